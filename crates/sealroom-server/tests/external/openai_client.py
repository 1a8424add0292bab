"""Drives sealroom's OpenAI-compatible proxy with the official openai package.

Usage: openai_client.py BASE_URL TOKEN THREAD_ID
Prints one JSON object with what each call returned.
"""

import json
import sys

import openai


def main():
    base_url, token, thread = sys.argv[1], sys.argv[2], sys.argv[3]
    client = openai.OpenAI(base_url=base_url, api_key=token, max_retries=0)
    result = {}
    chat = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Say hello"}])
    result["chat"] = chat.choices[0].message.content
    streamed = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Stream a hello"}], stream=True)
    result["streamed"] = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    result["models"] = sorted(model.id for model in client.models.list())
    sealroom = {"sealroom": {"thread_id": thread, "store": True}}
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "My name is Alice"}], extra_body=sealroom)
    continued = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "And what did I ask before?"}], extra_body=sealroom)
    result["continued"] = continued.choices[0].message.content
    try:
        openai.OpenAI(base_url=base_url, api_key="not-a-token", max_retries=0).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "x"}]
        )
        result["bad_token_error"] = None
    except openai.APIStatusError as error:
        result["bad_token_error"] = type(error).__name__
    print(json.dumps(result))


if __name__ == "__main__":
    main()

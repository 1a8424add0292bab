"""Precision and recall of sealroom's model-boundary detector, per category, beside Microsoft
Presidio's pattern recognizers and Yelp's detect-secrets, on one generated, labelled corpus.

The corpus: for every category, documents holding one valid value (checksums hold; phone numbers
valid in libphonenumber's metadata, through the ``phonenumbers`` package) written in several
formats inside prose in several languages; and look-alikes that must not match (order numbers
failing Luhn, IBAN-shaped strings with a bad checksum, version strings shaped like addresses,
dates, times, invoice and tracking numbers, UUIDs, commit hashes, placeholder passwords).

A finding counts as a true positive when it overlaps a labelled value of its category (each
label once); otherwise it is a false positive of its category. Run (from the repository root):

    python -m venv /tmp/detection && /tmp/detection/bin/pip install presidio-analyzer detect-secrets
    cargo build --release -p sealroom-server
    SEALROOM_BIN=target/release/sealroom /tmp/detection/bin/python clients/python/benchmarks/detection.py

`--corpus FILE` evaluates a corpus written elsewhere instead (JSON lines of
``{"text": ..., "labels": [[category, start, end], ...]}``, offsets in code points): a held-out
corpus written without looking at sealroom's rules is the fairer test.

Presidio runs its pattern recognizers alone (no spaCy model: names and addresses are out of
scope for all three); detect-secrets runs its default plugins line by line. Neither covers every
category: a dash means the tool has no rule for it.
"""

from __future__ import annotations

import base64
import json
import os
import random
import string
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import phonenumbers

PER_CATEGORY = 200
LOOK_ALIKES = 1200
SEED = 20261130

PERSONAL = ["email", "phone", "card_number", "iban", "us_ssn", "ip_address"]
SECRETS = [
    "cloud_access_key",
    "source_host_token",
    "chat_token",
    "model_api_key",
    "jwt",
    "private_key",
    "connection_password",
    "assigned_secret",
]

PROSE = [
    ("Hi team, for the booking use {} and let me know.", ""),
    ("Bonjour, voici les informations: {} — merci!", ""),
    ("Hallo, bitte {} im System hinterlegen. Danke.", ""),
    ("ok so {} was in the ticket from yesterday", ""),
    ("Please update my profile: {}. Thanks! 🙂", ""),
    ("Como combinado, {} segue abaixo.", ""),
    ("[2024-03-01 10:22] user wrote: {}", ""),
    ("確認してください: {} よろしく", ""),
]


@dataclass
class Document:
    text: str
    #: (category, start, end) in characters.
    labels: list[tuple[str, int, int]] = field(default_factory=list)


def alnum(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def luhn_complete(payload: str) -> str:
    total = 0
    for position, char in enumerate(reversed(payload)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            digit = digit - 9 if digit > 9 else digit
        total += digit
    return payload + str((10 - total % 10) % 10)


def iban_with_check(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{country}{98 - number % 97:02d}{bban}"


def group(text: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(text[i : i + size] for i in range(0, len(text), size))


def email(rng: random.Random) -> str:
    local = rng.choice(["ana.lopez", "j.smith+news", "kim_lee", "o.brien", "m.müller".replace("ü", "u"), "dev-ops"])
    domain = rng.choice(["example.org", "mail.example.co.uk", "corp.example.de", "example.io", "uni.example.edu"])
    return f"{local}{rng.randint(1, 999)}@{domain}"


def phone(rng: random.Random) -> str:
    while True:
        region, national_length = rng.choice([("US", 10), ("GB", 10), ("DE", 10), ("FR", 9), ("IN", 10), ("AU", 9)])
        code = phonenumbers.country_code_for_region(region)
        digits = str(rng.randint(2, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(national_length - 1))
        number = phonenumbers.parse(f"+{code}{digits}")
        if phonenumbers.is_valid_number(number):
            style = rng.choice(
                [phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.NATIONAL, phonenumbers.PhoneNumberFormat.E164]
            )
            return phonenumbers.format_number(number, style)


def card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), (str(rng.randint(51, 55)), 16), (str(rng.randint(2221, 2720)), 16), ("37", 15), ("6011", 16), ("35", 16)])
    number = luhn_complete(prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1)))
    return rng.choice([number, group(number), group(number, sep="-")])


def iban(rng: random.Random) -> str:
    country, bban = rng.choice(
        [
            ("DE", "".join(str(rng.randint(0, 9)) for _ in range(18))),
            ("GB", "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + "".join(str(rng.randint(0, 9)) for _ in range(14))),
            ("FR", "".join(str(rng.randint(0, 9)) for _ in range(23))),
            ("NL", "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + "".join(str(rng.randint(0, 9)) for _ in range(10))),
            ("ES", "".join(str(rng.randint(0, 9)) for _ in range(20))),
        ]
    )
    value = iban_with_check(country, bban)
    return rng.choice([value, group(value)])


def ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    sep = rng.choice(["-", "-", " "])
    return f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


def ip(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"{rng.choice([23, 51, 81, 142, 185, 203])}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    if rng.random() < 0.5:
        return ":".join(groups)
    return ":".join(groups[:3]) + "::" + ":".join(groups[6:])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def secret_value(category: str, rng: random.Random) -> tuple[str, str]:
    """(text as written, the value itself)."""
    if category == "cloud_access_key":
        value = "AKIA" + alnum(rng, 16, string.ascii_uppercase + "234567")
        return f"aws_access_key_id {value}", value
    if category == "source_host_token":
        value = rng.choice(["ghp_" + alnum(rng, 36), "github_pat_" + alnum(rng, 22) + "_" + alnum(rng, 59), "glpat-" + alnum(rng, 20)])
        return f"token {value}", value
    if category == "chat_token":
        value = f"xox{rng.choice('bpa')}-{rng.randint(10**11, 10**12 - 1)}-{rng.randint(10**11, 10**12 - 1)}-{alnum(rng, 24)}"
        return f"slack {value}", value
    if category == "model_api_key":
        value = rng.choice(
            [
                "sk-" + alnum(rng, 20) + "T3BlbkFJ" + alnum(rng, 20),
                "sk-proj-" + alnum(rng, 48, string.ascii_letters + string.digits + "_-"),
                "sk-ant-api03-" + alnum(rng, 80, string.ascii_letters + string.digits + "_-"),
            ]
        )
        return f"OPENAI_API_KEY={value}", value
    if category == "jwt":
        header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = b64url(json.dumps({"sub": str(rng.randint(1, 10**6)), "iat": rng.randint(1.6e9, 1.8e9)}).encode())
        value = f"{header}.{payload}.{b64url(rng.randbytes(32))}"
        return f"Authorization: Bearer {value}", value
    if category == "private_key":
        kind = rng.choice(["RSA ", "EC ", "OPENSSH ", ""])
        body = "\n".join(base64.b64encode(rng.randbytes(48)).decode() for _ in range(4))
        value = f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"
        return value, value
    if category == "connection_password":
        password = alnum(rng, 14, string.ascii_letters + string.digits + "!-_")
        scheme = rng.choice(["postgres", "mysql", "mongodb", "redis", "amqp"])
        return f"{scheme}://app_user:{password}@db{rng.randint(1, 9)}.internal:5432/main", password
    if category == "assigned_secret":
        value = alnum(rng, 20, string.ascii_letters + string.digits + "#!$%")
        name = rng.choice(["password", "api_key", "SECRET_KEY", "client_secret", "auth_token"])
        sep = rng.choice([" = ", ": ", "="])
        return f'{name}{sep}"{value}"', value
    raise ValueError(category)


PERSONAL_MAKERS = {"email": email, "phone": phone, "card_number": card, "iban": iban, "us_ssn": ssn, "ip_address": ip}


def look_alike(rng: random.Random) -> str:
    kind = rng.randrange(11)
    if kind == 0:
        number = card(rng).replace(" ", "").replace("-", "")
        return f"order {number[:-1]}{(int(number[-1]) + 1) % 10} shipped"
    if kind == 1:
        value = iban(rng).replace(" ", "")
        return f"reference {value[:2]}{(int(value[2:4]) + 1) % 100:02d}{value[4:]}"
    if kind == 2:
        return f"upgrade to version {rng.randint(1, 12)}.{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}"
    if kind == 3:
        return f"shipped on 2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    if kind == 4:
        return f"invoice INV-2024-{rng.randint(0, 999999):06d}, total EUR {rng.randint(10, 9999)}.{rng.randint(0, 99):02d}"
    if kind == 5:
        return f"tracking 1Z{alnum(rng, 16, string.ascii_uppercase + string.digits)}"
    if kind == 6:
        import uuid

        return f"request id {uuid.UUID(int=rng.getrandbits(128))}"
    if kind == 7:
        return f"fixed in commit {rng.getrandbits(160):040x}"
    if kind == 8:
        return rng.choice(["password = changeme", "api_key: <your-key-here>", "token=${TOKEN}", "password: ********"])
    if kind == 9:
        return f"call extension {rng.randint(100, 999)} or room {rng.randint(1, 40)}"
    return f"the OID is 1.3.6.1.4.1.{rng.randint(1, 99999)} in the MIB"


def corpus() -> list[Document]:
    rng = random.Random(SEED)
    documents = []
    for category in PERSONAL + SECRETS:
        for _ in range(PER_CATEGORY):
            template, _ = rng.choice(PROSE)
            if category in PERSONAL_MAKERS:
                written = value = PERSONAL_MAKERS[category](rng)
            else:
                written, value = secret_value(category, rng)
            before, after = template.split("{}")
            text = before + written + after
            start = len(before) + written.index(value)
            documents.append(Document(text, [(category, start, start + len(value))]))
    for _ in range(LOOK_ALIKES):
        template, _ = rng.choice(PROSE)
        documents.append(Document(template.format(look_alike(rng))))
    return documents


# The tools


def sealroom_findings(documents: list[Document]) -> tuple[list[list[tuple[str, int, int]]], float]:
    binary = os.environ.get("SEALROOM_BIN", "target/release/sealroom")
    lines = "\n".join(json.dumps(document.text) for document in documents) + "\n"
    started = time.perf_counter()
    output = subprocess.run([binary, "detect", "--lines"], input=lines, capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - started
    found = [[(f["category"], f["start"], f["end"]) for f in json.loads(line)["findings"]] for line in output.splitlines()]
    return found, elapsed


PRESIDIO_ENTITIES = {
    "email": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "card_number": "CREDIT_CARD",
    "iban": "IBAN_CODE",
    "us_ssn": "US_SSN",
    "ip_address": "IP_ADDRESS",
}


def presidio_findings(documents: list[Document]) -> tuple[list[list[tuple[str, int, int]]], float]:
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UsSsnRecognizer,
    )

    recognizers = {
        "email": EmailRecognizer(),
        "phone": PhoneRecognizer(),
        "card_number": CreditCardRecognizer(),
        "iban": IbanRecognizer(),
        "us_ssn": UsSsnRecognizer(),
        "ip_address": IpRecognizer(),
    }
    found = []
    started = time.perf_counter()
    for document in documents:
        findings = []
        for category, recognizer in recognizers.items():
            for result in recognizer.analyze(document.text, [PRESIDIO_ENTITIES[category]], None) or []:
                findings.append((category, result.start, result.end))
        found.append(findings)
    return found, time.perf_counter() - started


DETECT_SECRETS_TYPES = {
    "AWS Access Key": "cloud_access_key",
    "GitHub Token": "source_host_token",
    "GitLab Token": "source_host_token",
    "Slack Token": "chat_token",
    "OpenAI Token": "model_api_key",
    "JSON Web Token": "jwt",
    "Private Key": "private_key",
    "Basic Auth Credentials": "connection_password",
    "Secret Keyword": "assigned_secret",
}


def detect_secrets_findings(documents: list[Document]) -> tuple[list[list[tuple[str, int, int]]], float]:
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    found = []
    started = time.perf_counter()
    with default_settings():
        for document in documents:
            findings = []
            offset = 0
            for line in document.text.split("\n"):
                for secret in scan_line(line):
                    category = DETECT_SECRETS_TYPES.get(secret.type, "other:" + secret.type)
                    value = secret.secret_value or ""
                    at = line.find(value) if value else -1
                    if at < 0:
                        findings.append((category, offset, offset + len(line)))
                    else:
                        findings.append((category, offset + at, offset + at + len(value)))
                offset += len(line) + 1
            found.append(findings)
    return found, time.perf_counter() - started


def score(documents: list[Document], found: list[list[tuple[str, int, int]]], categories: list[str]) -> dict[str, tuple[int, int, int]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # tp, fp, fn
    for document, findings in zip(documents, found, strict=True):
        matched = set()
        for category, start, end in findings:
            if category not in categories:
                continue
            hit = next(
                (i for i, (label, s, e) in enumerate(document.labels) if label == category and start < e and s < end and i not in matched),
                None,
            )
            if hit is None:
                counts[category][1] += 1
            else:
                matched.add(hit)
                counts[category][0] += 1
        for i, (label, _, _) in enumerate(document.labels):
            if label in categories and i not in matched:
                counts[label][2] += 1
    return {category: tuple(counts[category]) for category in categories}  # type: ignore[misc]


def show_errors(documents: list[Document], found: list[list[tuple[str, int, int]]], per_category: int = 5) -> None:
    """Prints up to `per_category` false positives and misses of one tool, for reading."""
    shown: dict[str, int] = defaultdict(int)
    for document, findings in zip(documents, found, strict=True):
        for category, start, end in findings:
            hit = any(label == category and start < e and s < end for label, s, e in document.labels)
            if not hit and shown["FP " + category] < per_category:
                shown["FP " + category] += 1
                print(f"FP {category}: {document.text[start:end]!r} in {document.text[:160]!r}")
        for label, start, end in document.labels:
            hit = any(category == label and s < end and start < e for category, s, e in findings)
            if not hit and shown["FN " + label] < per_category:
                shown["FN " + label] += 1
                print(f"FN {label}: {document.text[start:end]!r} in {document.text[:160]!r}")


def ratio(numerator: int, denominator: int) -> str:
    return f"{numerator / denominator:.3f}" if denominator else "—"


def load(path: str) -> list[Document]:
    documents = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            documents.append(Document(record["text"], [tuple(label) for label in record["labels"]]))  # type: ignore[misc]
    return documents


def main() -> None:
    if "--corpus" in sys.argv:
        documents = load(sys.argv[sys.argv.index("--corpus") + 1])
    else:
        documents = corpus()
    megabytes = sum(len(d.text.encode()) for d in documents) / 1e6
    results = {}
    timings = {}
    for name, run, categories in [
        ("sealroom", sealroom_findings, PERSONAL + SECRETS),
        ("Presidio (pattern recognizers)", presidio_findings, PERSONAL),
        ("detect-secrets (default plugins)", detect_secrets_findings, SECRETS),
    ]:
        found, elapsed = run(documents)
        if "--show-errors" in sys.argv and name == "sealroom":
            show_errors(documents, found)
        results[name] = score(documents, found, categories)
        timings[name] = elapsed
    labels = sum(len(document.labels) for document in documents)
    negatives = sum(1 for document in documents if not document.labels)
    print(f"{len(documents)} documents ({labels} labelled values, {negatives} without any), {megabytes:.2f} MB\n")
    names = list(results)
    print("| category | " + " | ".join(f"{n} precision / recall" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for category in PERSONAL + SECRETS:
        cells = []
        for name in names:
            if category not in results[name]:
                cells.append("—")
                continue
            tp, fp, fn = results[name][category]
            cells.append(f"{ratio(tp, tp + fp)} / {ratio(tp, tp + fn)}")
        print(f"| {category} | " + " | ".join(cells) + " |")
    print()
    for name in names:
        print(f"{name}: {timings[name]:.2f} s for the corpus ({megabytes / timings[name]:.2f} MB/s, process start included)")


if __name__ == "__main__":
    sys.exit(main())

"""An identity provider sealroom did not write, for its tests.

Mints tokens with PyJWT (RS256 and ES256 keys made by `cryptography`) and serves the public keys
from its own JWKS endpoint on a random loopback port. Prints one JSON line with the port and the
tokens, then obeys commands on stdin, one per line:

    rotate    replace the RSA key with a new one (new kid) and print a token signed by it
    requests  print how many times the JWKS endpoint was fetched

Exits when stdin closes.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


def public_jwk(algorithm_class, key, kid, alg):
    jwk = json.loads(algorithm_class.to_jwk(key.public_key()))
    jwk.update(kid=kid, alg=alg, use="sig")
    return jwk


def main():
    issuer, audience = sys.argv[1], sys.argv[2]
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    state = {
        "keys": [public_jwk(RSAAlgorithm, rsa_key, "py-rsa-1", "RS256"), public_jwk(ECAlgorithm, ec_key, "py-ec-1", "ES256")],
        "requests": 0,
    }
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/jwks.json":
                self.send_error(404)
                return
            with lock:
                state["requests"] += 1
                body = json.dumps({"keys": state["keys"]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    now = int(time.time())

    def token(key, algorithm, kid, **claims):
        payload = {"iss": issuer, "aud": audience, "sub": "alice", "iat": now, "nbf": now, "exp": now + 600}
        payload.update(claims)
        return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})

    tokens = {
        "alice_rs256": token(rsa_key, "RS256", "py-rsa-1", org="acme", roles=["tenant-writer"]),
        "bob_es256": token(ec_key, "ES256", "py-ec-1", sub="bob", org="acme"),
        "expired": token(rsa_key, "RS256", "py-rsa-1", exp=now - 3600),
        "wrong_audience": token(rsa_key, "RS256", "py-rsa-1", aud="someone-else"),
        "unknown_kid": token(rsa_key, "RS256", "py-rsa-9"),
        "wrong_key_for_kid": token(ec_key, "ES256", "py-rsa-1"),
        "exp_as_string": token(rsa_key, "RS256", "py-rsa-1", exp=str(now + 600)),
        "none": jwt.encode({"iss": issuer, "aud": audience, "sub": "alice", "exp": now + 600}, None, algorithm="none"),
    }
    print(json.dumps({"port": server.server_address[1], "tokens": tokens}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "rotate":
            new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            with lock:
                state["keys"] = [public_jwk(RSAAlgorithm, new_key, "py-rsa-2", "RS256"), state["keys"][1]]
            print(json.dumps({"token": token(new_key, "RS256", "py-rsa-2", sub="carol")}), flush=True)
        elif command == "requests":
            with lock:
                print(json.dumps({"requests": state["requests"]}), flush=True)
    server.shutdown()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Stand-alone re-check of corpus.jsonl (does not import generate.py)."""
import ipaddress
import os
import json
import re
import sys
from collections import Counter

import phonenumbers as pn

CATS = {"email", "phone", "card_number", "iban", "us_ssn", "ip_address", "cloud_access_key",
        "source_host_token", "chat_token", "model_api_key", "jwt", "private_key",
        "connection_password", "assigned_secret"}
IBAN_LEN = {"AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BR": 29, "CH": 21, "CY": 28, "CZ": 24,
            "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21,
            "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "LT": 20, "LU": 20, "LV": 21, "MC": 27,
            "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SA": 24, "SE": 24, "SI": 19,
            "SK": 24, "TR": 26, "QA": 29, "KW": 30, "EG": 29, "UA": 29}
REGIONS = [None, "US", "CA", "GB", "DE", "FR", "IN", "AU", "ES", "IT", "NL", "BR", "MX", "JP", "CN", "KR",
           "CH", "AT", "BE", "SE", "PL", "IE", "PT", "SG", "ZA", "NG", "KE", "AE", "IL", "TR", "RU", "NZ",
           "AR", "DK", "NO", "FI", "HK", "EG", "UA", "CZ", "PH", "VN"]
FORMATS = {
    "cloud_access_key": r"(?:AKIA|ASIA)[A-Z2-7]{16}|AIza[\w-]{35}",
    "source_host_token": r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_\w{82}|glpat-[\w-]{20}",
    "chat_token": r"xoxb-\d+-\d+-\w+|xoxp-\d+-\d+-\d+-[0-9a-f]{32}|xapp-1-A\w+-\d+-[0-9a-f]{64}"
                  r"|\d{8,10}:AA[\w-]{33}|[MNO][\w]{23,25}\.[\w-]{6}\.[\w-]{27,38}",
    "model_api_key": r"sk-(?:proj-|svcacct-|admin-|ant-api03-|ant-admin01-)?[\w-]{20,}|hf_[A-Za-z]{34}"
                     r"|gsk_\w{52}|r8_\w{37}|pplx-\w{48}|xai-\w{80}",
    "jwt": r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+",
}


def luhn(d):
    s = 0
    for i, ch in enumerate(reversed(d)):
        x = int(ch)
        if i % 2:
            x *= 2
            x -= 9 if x > 9 else 0
        s += x
    return s % 10 == 0


def check(cat, v):
    if cat == "email":
        return re.fullmatch(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}", v)
    if cat == "phone":
        core = re.split(r"\s*,?\s*(?:[Ee]xt\.?|x)\s*\d+$", v)[0]
        for r in REGIONS:
            try:
                if pn.is_valid_number(pn.parse(core, r)):
                    return True
            except pn.NumberParseException:
                pass
        return False
    if cat == "card_number":
        d = re.sub(r"[ -]", "", v)
        return d.isdigit() and 13 <= len(d) <= 19 and luhn(d) and d[0] in "23456"
    if cat == "iban":
        s = v.replace(" ", "").upper()
        if IBAN_LEN.get(s[:2]) != len(s):
            return False
        return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1
    if cat == "us_ssn":
        d = re.sub(r"[ -]", "", v)
        return (len(d) == 9 and d.isdigit() and d[:3] not in ("000", "666") and d[0] != "9"
                and d[3:5] != "00" and d[5:] != "0000")
    if cat == "ip_address":
        return ipaddress.ip_address(v).is_global
    if cat == "private_key":
        return v.startswith("-----BEGIN ") and "PRIVATE KEY" in v and v.endswith("-----")
    if cat in FORMATS:
        return re.fullmatch(FORMATS[cat], v)
    return len(v) >= 8 and not re.search(r"\s", v)


def main(path):
    n = 0
    per = Counter()
    bad = 0
    for line_no, line in enumerate(open(path, encoding="utf-8")):
        d = json.loads(line)
        assert set(d) == {"text", "labels"}, d.keys()
        t = d["text"]
        prev_end = -1
        for cat, a, b in sorted(d["labels"], key=lambda x: x[1]):
            assert cat in CATS, cat
            assert 0 <= a < b <= len(t), (line_no, a, b)
            assert a >= prev_end, ("overlap", line_no)
            prev_end = b
            v = t[a:b]
            if v != v.strip() or not check(cat, v):
                bad += 1
                print("BAD", line_no, cat, repr(v[:80]))
            per[cat] += 1
        n += 1
    print(f"{n} docs, {sum(per.values())} labels, {bad} bad")
    for c in sorted(per):
        print(f"  {c:22s} {per[c]}")
    return bad == 0


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus.jsonl")) else 1)

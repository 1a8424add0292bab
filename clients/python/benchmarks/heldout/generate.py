#!/usr/bin/env python3
"""Held-out labelled corpus generator for PII / secret detectors.

Writes corpus.jsonl (one {"text", "labels"} object per line) and
corpus_meta.jsonl (same order: doc id, kind, primary category, template id).

Only the standard library + `phonenumbers` are used.  Fixed seed => deterministic.

Labelling conventions (see README.md):
  * span = the value only (no quotes, no "tel:" / "Bearer " prefix, no surrounding brackets);
  * phone numbers: the whole written number including '+', parentheses around an area
    code, and an extension ("ext. 12" / "x12") when one is written;
  * IPv6 in brackets "[2001:...]:443": only the address; IPv4 "a.b.c.d:port": only the address;
  * private_key: from "-----BEGIN" through the closing "-----" of the END line (inclusive);
    in JSON/env strings the escaped form (literal backslash-n) is what is labelled;
  * a value that has a specific format (AWS key id, GitHub token, JWT, ...) gets that
    specific category even when it appears in an assignment (`GITHUB_TOKEN=ghp_...`);
    assigned_secret is for generic random values in assignments;
  * connection_password: only the password of scheme://user:password@host.
"""
import base64
import hashlib
import hmac
import ipaddress
import json
import os
import random
import re
import string
import sys
import unicodedata
import uuid
import zlib
from collections import Counter, defaultdict

import phonenumbers as pn
from phonenumbers import PhoneNumberFormat as PF
from phonenumbers import PhoneNumberType as PT

SEED = 1_947_2024
rng = random.Random(SEED)
OUT_DIR = os.path.dirname(os.path.abspath(__file__))
N_POS_PER_CAT = 150
N_NEG = 1500

CATEGORIES = ["email", "phone", "card_number", "iban", "us_ssn", "ip_address",
              "cloud_access_key", "source_host_token", "chat_token", "model_api_key",
              "jwt", "private_key", "connection_password", "assigned_secret"]

DIGITS = string.digits
UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
LETTERS = string.ascii_letters
ALNUM = LETTERS + DIGITS
URLSAFE = ALNUM + "-_"
HEX = "0123456789abcdef"
B32 = UPPER + "234567"
B64 = ALNUM + "+/"


def rs(n, alphabet=ALNUM):
    return "".join(rng.choice(alphabet) for _ in range(n))


def rs_mixed(n, alphabet=ALNUM):
    """random string that contains at least one digit, one upper and one lower (looks random)."""
    while True:
        s = rs(n, alphabet)
        ok = True
        for pred in (str.isdigit, str.isupper, str.islower):
            if any(pred(c) for c in alphabet) and not any(pred(c) for c in s):
                ok = False
        if ok:
            return s


def rhex(n):
    while True:
        s = rs(n, HEX)
        if any(c.isdigit() for c in s) and any(c.isalpha() for c in s):
            return s


def rbytes(n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def pick(seq):
    return rng.choice(seq)


def wpick(pairs):
    """weighted pick from [(item, weight), ...]"""
    items, weights = zip(*pairs)
    return rng.choices(items, weights=weights, k=1)[0]


def fold(s):
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]", "", s)


# --------------------------------------------------------------------------------------
# Filler vocabulary (never sensitive)
# --------------------------------------------------------------------------------------
FIRST = ["James", "Maria", "Wei", "Aisha", "Lukas", "Sofia", "Hiroshi", "Priya", "Mateo", "Olga",
         "Chen", "Fatima", "Noah", "Emma", "Liam", "Yuki", "Carlos", "Ana", "Ivan", "Zoë", "José",
         "Björn", "Siobhan", "Kwame", "Amara", "Raj", "Mei", "Omar", "Léa", "Jonas", "Elif",
         "Tomasz", "Ingrid", "Diego", "Hannah", "Ahmed", "Sven", "Chloé", "Marco", "Giulia",
         "Pedro", "Nadia", "Arjun", "Sakura", "Minjun", "Jiwoo", "Thabo", "Oluwaseun", "Ewa",
         "Freya", "Mohammed", "Lucía", "Matthias", "Anaïs", "Dmitri", "Kofi", "Ines", "Yusuf"]
LAST = ["Smith", "García", "Müller", "Nguyen", "Kim", "Patel", "Rossi", "Dubois", "Kowalski",
        "Johansson", "Tanaka", "Silva", "O'Brien", "Schmidt", "Ivanova", "Chen", "Okafor",
        "Haddad", "Jensen", "van der Berg", "Fernández", "Novak", "Yılmaz", "Larsen", "Moreau",
        "Bianchi", "Santos", "Kaur", "Wong", "Nakamura", "Adeyemi", "Murphy", "Fischer",
        "Lindqvist", "Costa", "Horvat", "Papadopoulos", "Cohen", "Singh", "Brown", "Łukasik",
        "Øvergaard", "Becker", "Dupont", "Mensah", "Sato", "Park", "Alvarez"]
COMPANIES = [("Acme Corp", "acme.com"), ("Globex", "globex.io"), ("Initech", "initech.net"),
             ("Umbrella Health", "umbrella-health.org"), ("Stark Logistik", "stark-logistik.de"),
             ("Wayne Analytics", "wayne-analytics.co.uk"), ("Hooli", "hooli.xyz"),
             ("Contoso", "contoso.com"), ("Fabrikam", "fabrikam.fr"), ("Northwind", "northwind.ai"),
             ("Tailspin Toys", "tailspintoys.com"), ("Cyberdyne", "cyberdyne.dev"),
             ("Vandelay Industries", "vandelay.us"), ("Pied Piper", "piedpiper.app"),
             ("Aperture Labs", "aperture-labs.tech"), ("Soylent", "soylent.co"),
             ("Nakatomi Trading", "nakatomi.co.jp"), ("Rekall", "rekall.com.br"),
             ("Oceanic Air", "oceanic-air.com.au"), ("Blue Sun", "bluesun.cn"),
             ("Massive Dynamic", "massivedynamic.net"), ("Gringotts Bank", "gringotts.eu"),
             ("Duff Brewery", "duff.beer"), ("Krusty Krab", "krustykrab.es"),
             ("Bluth Company", "bluth.company"), ("Dunder Mifflin", "dundermifflin.com"),
             ("Prestige Worldwide", "prestige-worldwide.nl"), ("Wonka", "wonka.ch")]
FREEMAIL = ["gmail.com", "outlook.com", "hotmail.co.uk", "yahoo.com", "yahoo.co.jp", "proton.me",
            "protonmail.com", "icloud.com", "gmx.de", "web.de", "t-online.de", "orange.fr",
            "free.fr", "libero.it", "qq.com", "163.com", "naver.com", "yandex.ru", "mail.ru",
            "uol.com.br", "rediffmail.com", "fastmail.fm", "hey.com", "zoho.com", "aol.com",
            "seznam.cz", "wp.pl", "hotmail.com", "live.com", "me.com"]
SUBDOMAINS = ["mail.", "eng.", "corp.", "us.", "eu.", "lists.", "support.", "hr.", "dev.", "sales.",
              "research.", "students.", "alumni.", "notifications."]
TAGS = ["newsletter", "work", "spam", "github", "shopping", "2024", "billing", "test", "amazon",
        "jobs", "receipts", "dev", "travel"]
USERS = ["app", "admin", "svc_billing", "deploy", "analytics_ro", "root", "etl_user", "web",
         "api", "reporting", "backup", "ci", "django", "rails_app", "orders_rw", "grafana",
         "airflow", "keycloak", "metabase", "n8n"]
DBNAMES = ["orders", "app_prod", "analytics", "users", "inventory", "crm", "billing", "warehouse",
           "events", "shop", "payments", "auth", "metrics"]
SERVICES = ["auth", "billing", "gateway", "orders", "search", "payments", "notifier", "worker",
            "scheduler", "ingest", "api", "web", "cart", "ledger"]
AWS_REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2",
               "ap-northeast-1", "sa-east-1", "ca-central-1", "eu-north-1"]
ORGS = ["acme", "globex-eng", "initech", "hooli-labs", "piedpiper", "contoso-dev", "northwind",
        "cyberdyne-sys", "octo-platform", "data-team"]
REPOS = ["infra", "api-server", "web-frontend", "terraform-modules", "ml-pipeline", "mobile-app",
         "dotfiles", "helm-charts", "docs", "billing-service"]
BICS = ["DEUTDEFF", "COBADEFFXXX", "BNPAFRPP", "NWBKGB2L", "INGBNL2A", "RABONL2U", "BSCHESMM",
        "UNCRITMM", "UBSWCHZH80A", "GEBABEBB", "NDEASESS", "DABADKKK", "PKOPPLPW", "BARCGB22"]
CITIES = ["Berlin", "Lyon", "Madrid", "Toronto", "Osaka", "Austin", "Manchester", "Porto",
          "Kraków", "Nairobi", "São Paulo", "Bangalore", "Melbourne", "Zürich", "Utrecht"]


def f_name(arg=None):
    return f"{pick(FIRST)} {pick(LAST)}"


def company():
    return pick(COMPANIES)


def f_domain(arg=None):
    return company()[1]


def f_host(arg=None):
    d = f_domain()
    return pick([f"db-prod-{rng.randint(1, 9)}.internal", f"pg.{d}", f"mysql-0{rng.randint(1, 4)}.{d}",
                 f"{pick(DBNAMES)}-db.{pick(AWS_REGIONS)}.rds.amazonaws.com",
                 f"{pick(['primary', 'replica', 'main'])}.{pick(DBNAMES)}.svc.cluster.local",
                 f"db.{d}", f"{pick(SERVICES)}-cache.{d}", "localhost", "postgres", "db",
                 f"{pick(['prod', 'stg', 'dev'])}-{pick(DBNAMES)}.c{rs(6, LOWER + DIGITS)}.{pick(AWS_REGIONS)}.rds.amazonaws.com"])


def f_date(arg=None):
    y, m, d = rng.randint(2019, 2026), rng.randint(1, 12), rng.randint(1, 28)
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return pick([f"{y}-{m:02d}-{d:02d}", f"{d:02d}.{m:02d}.{y}", f"{m}/{d}/{y}",
                 f"{d} {months[m - 1]} {y}", f"{months[m - 1]} {d}, {y}", f"{d:02d}/{m:02d}/{y}"])


def f_isodate(arg=None):
    return f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def f_ts(arg=None):
    y, m, d = rng.randint(2022, 2026), rng.randint(1, 12), rng.randint(1, 28)
    hh, mm, ss = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    return pick([f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}Z",
                 f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{rng.randint(0, 999):03d}Z",
                 f"{y}-{m:02d}-{d:02d} {hh:02d}:{mm:02d}:{ss:02d}",
                 f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}+02:00"])


def f_clf_ts(arg=None):
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return (f"{rng.randint(1, 28):02d}/{pick(months)}/{rng.randint(2022, 2026)}:"
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} +0000")


def f_price(arg=None):
    a = rng.randint(1, 4999)
    c = rng.randint(0, 99)
    return pick([f"${a:,}.{c:02d}", f"€{a},{c:02d}", f"{a},{c:02d} €", f"£{a}.{c:02d}", f"USD {a:,}.{c:02d}",
                 f"¥{a * 100:,}", f"R$ {a},{c:02d}", f"₹{a:,}", f"CHF {a}.{c:02d}"])


def f_uuid(arg=None):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def f_num(arg=None):
    return str(rng.randint(2, 99999))


def f_port(arg=None):
    return str(pick([5432, 3306, 6379, 27017, 5672, 8080, 443, 8443, 9200, rng.randint(1024, 65000)]))


def f_order(arg=None):
    return pick([f"#{rng.randint(100000, 999999)}", f"ORD-{rng.randint(2019, 2026)}-{rng.randint(10000, 99999)}",
                 f"PO-{rng.randint(1000, 99999)}", f"SO{rng.randint(100000, 999999)}"])


def f_proj(arg=None):
    return f"{pick(ORGS)}-{pick(['prod', 'staging', 'ml', 'data'])}-{rng.randint(100000, 999999)}"


FILLERS = {
    "name": f_name,
    "first": lambda a=None: pick(FIRST),
    "last": lambda a=None: pick(LAST),
    "company": lambda a=None: company()[0],
    "domain": f_domain,
    "host": f_host,
    "user": lambda a=None: pick(USERS),
    "dbname": lambda a=None: pick(DBNAMES),
    "svc": lambda a=None: pick(SERVICES),
    "port": f_port,
    "num": f_num,
    "date": f_date,
    "isodate": f_isodate,
    "ts": f_ts,
    "clf_ts": f_clf_ts,
    "price": f_price,
    "uuid": f_uuid,
    "order": f_order,
    "proj": f_proj,
    "org": lambda a=None: pick(ORGS),
    "repo": lambda a=None: pick(REPOS),
    "region": lambda a=None: pick(AWS_REGIONS),
    "bic": lambda a=None: pick(BICS),
    "city": lambda a=None: pick(CITIES),
    "hex": lambda a=None: rhex(int(a or 32)),
    "alnum": lambda a=None: rs_mixed(int(a or 16)),
    "upper": lambda a=None: rs(int(a or 8), UPPER + DIGITS),
    "digits": lambda a=None: str(rng.randint(1, 9)) + rs(int(a or 8) - 1, DIGITS),
    "sha": lambda a=None: rhex(40),
    "shortsha": lambda a=None: rhex(7),
}

# --------------------------------------------------------------------------------------
# Sensitive value generators
# --------------------------------------------------------------------------------------


# ---------------- email
def gen_email(arg=None):
    f, l = fold(pick(FIRST)).lower(), fold(pick(LAST)).lower()
    local = wpick([(f"{f}.{l}", 6), (f"{f[0]}{l}", 4), (f"{f}_{l}{rng.randint(1, 99)}", 2),
                   (f"{f}+{pick(TAGS)}", 3), (f"{f}.{l}+{pick(TAGS)}", 2), (f"{l}.{f}", 2),
                   (f"{f}{rng.randint(70, 2005)}", 2), (f"{f[0]}.{l}-{rng.randint(1, 9)}", 1),
                   (pick(["ops-alerts", "billing", "accounts.payable", "noreply", "security",
                          "it-helpdesk", "dpo", "press", "hr.benefits", "oncall+pager"]), 2),
                   (f"{f}", 2)])
    if arg == "sa":
        return f"{pick(['terraform', 'ci-deployer', 'bq-reader', 'firebase-adminsdk-' + rs(5, LOWER + DIGITS)])}@{f_proj()}.iam.gserviceaccount.com"
    kind = rng.random()
    if kind < 0.45:
        dom = pick(FREEMAIL)
    elif kind < 0.75:
        dom = company()[1]
    else:
        dom = pick(SUBDOMAINS) + company()[1]
    addr = f"{local}@{dom}"
    r = rng.random()
    if r < 0.07:
        addr = addr.upper()
    elif r < 0.17:
        addr = local.capitalize() + "@" + (dom if rng.random() < .5 else dom.capitalize())
        if "." in local:
            a, b = local.split(".", 1)
            addr = a.capitalize() + "." + b.capitalize() + "@" + dom
    return addr


# ---------------- phone
PHONE_REGIONS = [("US", 14), ("GB", 8), ("DE", 7), ("FR", 6), ("CA", 3), ("IN", 5), ("AU", 3),
                 ("ES", 3), ("IT", 3), ("NL", 3), ("BR", 4), ("MX", 2), ("JP", 3), ("CN", 3),
                 ("KR", 2), ("CH", 2), ("AT", 2), ("BE", 2), ("SE", 2), ("PL", 2), ("IE", 2),
                 ("PT", 2), ("SG", 2), ("ZA", 2), ("NG", 2), ("KE", 1), ("AE", 2), ("IL", 1),
                 ("TR", 2), ("RU", 2), ("NZ", 1), ("AR", 1), ("DK", 1), ("NO", 1), ("FI", 1),
                 ("HK", 1), ("EG", 1), ("UA", 1), ("CZ", 1), ("PH", 1), ("VN", 1)]


NANP_AREAS = {"US": [212, 213, 206, 303, 305, 310, 312, 317, 347, 404, 415, 469, 503, 512, 602, 617, 646,
                      702, 713, 718, 720, 737, 773, 786, 818, 832, 857, 917, 929, 971, 208, 614, 615, 919],
              "CA": [416, 604, 514, 403, 613, 647, 437, 778, 902, 780, 204, 306]}


def rand_phone_number(region):
    if region in NANP_AREAS:
        for _ in range(2000):
            n = int(f"{pick(NANP_AREAS[region])}{rng.randint(2, 9)}{rs(6, DIGITS)}")
            num = pn.PhoneNumber(country_code=1, national_number=n)
            if pn.is_valid_number(num) and pn.region_code_for_number(num) == region:
                return num
    types = [PT.MOBILE, PT.FIXED_LINE, PT.MOBILE]
    for _ in range(2000):
        t = pick(types)
        ex = pn.example_number_for_type(region, t)
        if ex is None:
            continue
        nsn = str(ex.national_number)
        keep = pick([1, 1, 1, 2, 2, 3])
        new = nsn[:keep] + rs(len(nsn) - keep, DIGITS)
        num = pn.PhoneNumber(country_code=ex.country_code, national_number=int(new))
        if ex.italian_leading_zero:
            num.italian_leading_zero = True
            if ex.number_of_leading_zeros:
                num.number_of_leading_zeros = ex.number_of_leading_zeros
        if pn.is_valid_number(num) and pn.region_code_for_number(num) == region:
            return num
    raise RuntimeError(region)


def phone_ok(s, num, region, ext=None):
    try:
        p = pn.parse(s, region)
    except pn.NumberParseException:
        return False
    return (pn.is_valid_number(p) and p.country_code == num.country_code
            and p.national_number == num.national_number and (p.extension or None) == ext)


def format_phone(num, region, style=None):
    intl = pn.format_number(num, PF.INTERNATIONAL)
    nat = pn.format_number(num, PF.NATIONAL)
    e164 = pn.format_number(num, PF.E164)
    cc = str(num.country_code)
    if style == "e164":
        return e164
    if style == "rfc3966":
        return pn.format_number(num, PF.RFC3966)[4:]  # drop 'tel:'
    cands = [(intl, 5), (nat, 4), (e164, 2), (intl.replace(" ", "-"), 1), ("00" + intl[1:], 1),
             (re.sub(r"[^\d]", "", nat), 1)]
    if region in ("FR", "BE", "CH", "IT", "ES", "PT", "NL", "GB", "DE"):
        cands += [(intl.replace(" ", "."), 1), (nat.replace(" ", "."), 1)]
    if region in ("JP", "KR", "CN", "DE", "AT", "BR", "MX", "AR", "PL", "RU", "IN"):
        cands += [(nat.replace(" ", "-"), 1)]
    if region in ("US", "CA"):
        n = pn.national_significant_number(num)
        a, b, c = n[:3], n[3:6], n[6:]
        cands += [(f"{a}.{b}.{c}", 3), (f"{a}-{b}-{c}", 4), (f"({a}) {b}-{c}", 5), (f"({a}){b}-{c}", 1),
                  (f"1-{a}-{b}-{c}", 1), (f"+1 ({a}) {b}-{c}", 2), (f"+1.{a}.{b}.{c}", 1),
                  (f"{a} {b} {c}", 1), (f"+1 {a} {b} {c}", 1), (f"+1-{a}-{b}-{c}", 1)]
    if region in ("DE", "AT", "CH"):
        cands.append((f"+{cc} (0){intl[len(cc) + 2:]}", 3))
        cands.append((f"+{cc} (0) {intl[len(cc) + 2:]}", 1))
    if region == "GB":
        cands.append((f"+44 (0){intl[4:]}", 2))
    if region == "FR":
        cands.append((nat.replace(" ", "."), 3))
    for _ in range(20):
        s = wpick(cands)
        if phone_ok(s, num, region):
            return s
    return intl


def gen_phone(arg=None):
    region, style = None, None
    for tok in (arg or "").split("."):
        if len(tok) == 2 and tok.isupper():
            region = tok
        elif tok:
            style = tok
    if region is None:
        region = wpick(PHONE_REGIONS)
    num = rand_phone_number(region)
    s = format_phone(num, region, style)
    assert phone_ok(s, num, region), (s, region)
    if style is None and rng.random() < 0.08:
        ext = str(rng.randint(1, 9999))
        for sep in rng.sample([" ext. ", " x", " ext ", " x ", ", ext. ", " Ext. "], 6):
            if phone_ok(s + sep + ext, num, region, ext):
                s = s + sep + ext
                break
    return s


def gen_phone_pair_link(arg=None):
    """markdown link with display text and tel: URI of the same number (two labels)."""
    region = wpick(PHONE_REGIONS)
    num = rand_phone_number(region)
    disp = format_phone(num, region)
    e = pn.format_number(num, PF.E164)
    return [(None, "["), ("phone", disp), (None, "](tel:"), ("phone", e), (None, ")")]


# ---------------- cards
def luhn_digit(partial):
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(num):
    return luhn_digit(num[:-1]) == num[-1]


CARD_NETWORKS = {
    "visa": (["4"], [16] * 12 + [13] + [19] * 2),
    "mc": ([str(i) for i in range(51, 56)] * 20 + [str(i) for i in range(2221, 2721)], [16]),
    "amex": (["34", "37"], [15]),
    "discover": (["6011"] * 6 + [str(i) for i in range(644, 650)] + ["65"] * 4, [16] * 5 + [19]),
    "jcb": ([str(i) for i in range(3528, 3590)], [16]),
    "diners": (["300", "301", "302", "303", "304", "305", "36", "38"], [14]),
    "unionpay": (["62"], [16] * 4 + [19]),
}
CARD_WEIGHTS = [("visa", 10), ("mc", 8), ("amex", 4), ("discover", 2), ("jcb", 1), ("diners", 1),
                ("unionpay", 1)]
TEST_CARDS = ["4111111111111111", "4242424242424242", "5555555555554444", "5105105105105100",
              "378282246310005", "371449635398431", "6011111111111117", "3530111333300000",
              "4012888888881881", "2223003122003222", "36227206271667", "4000056655665556"]


def card_prefix_ok(n):
    L = len(n)
    if n[0] == "4":
        return L in (13, 16, 19)
    if 51 <= int(n[:2]) <= 55 or 2221 <= int(n[:4]) <= 2720:
        return L == 16
    if n[:2] in ("34", "37"):
        return L == 15
    if n.startswith("6011") or 644 <= int(n[:3]) <= 649 or n.startswith("65"):
        return L in (16, 19)
    if 3528 <= int(n[:4]) <= 3589:
        return L in (16, 17, 18, 19)
    if n[:3] in ("300", "301", "302", "303", "304", "305") or n[:2] in ("36", "38"):
        return L == 14
    if n.startswith("62"):
        return 16 <= L <= 19
    return False


for _c in TEST_CARDS:
    assert luhn_ok(_c) and card_prefix_ok(_c), _c


def raw_card(network=None):
    network = network or wpick(CARD_WEIGHTS)
    prefixes, lengths = CARD_NETWORKS[network]
    p = pick(prefixes)
    L = pick(lengths)
    body = p + rs(L - len(p) - 1, DIGITS)
    n = body + luhn_digit(body)
    assert luhn_ok(n) and card_prefix_ok(n)
    return n


def group_card(n, sep):
    L = len(n)
    if L == 15:
        parts = [n[:4], n[4:10], n[10:]]
    elif L == 14:
        parts = [n[:4], n[4:10], n[10:]]
    elif L == 13:
        parts = [n[:4], n[4:8], n[8:]]
    else:
        parts = [n[i:i + 4] for i in range(0, L, 4)]
    return sep.join(parts)


def gen_card(arg=None):
    args = (arg or "").split(".")
    if "test" in args:
        n = pick(TEST_CARDS)
    else:
        net = next((a for a in args if a in CARD_NETWORKS), None)
        n = raw_card(net)
    if "plain" in args:
        return n
    sep = wpick([(" ", 6), ("-", 3), ("", 3)])
    return group_card(n, sep)


# ---------------- IBAN
IBAN_SPECS = {
    "AD": (24, "4n4n12c"), "AE": (23, "3n16n"), "AT": (20, "5n11n"), "BE": (16, "3n7n2n"),
    "BG": (22, "4a4n2n8c"), "BR": (29, "8n5n10n1a1c"), "CH": (21, "5n12c"), "CY": (28, "3n5n16c"),
    "CZ": (24, "4n6n10n"), "DE": (22, "8n10n"), "DK": (18, "4n9n1n"), "EE": (20, "2n2n11n1n"),
    "ES": (24, "4n4n1n1n10n"), "FI": (18, "3n11n"), "FR": (27, "5n5n11c2n"), "GB": (22, "4a6n8n"),
    "GR": (27, "3n4n16c"), "HR": (21, "7n10n"), "HU": (28, "3n4n1n15n1n"), "IE": (22, "4a6n8n"),
    "IL": (23, "3n3n13n"), "IS": (26, "4n2n6n10n"), "IT": (27, "1a5n5n12c"), "LT": (20, "5n11n"),
    "LU": (20, "3n13c"), "LV": (21, "4a13c"), "MC": (27, "5n5n11c2n"), "MT": (31, "4a5n18c"),
    "NL": (18, "4a10n"), "NO": (15, "4n6n1n"), "PL": (28, "8n16n"), "PT": (25, "4n4n11n2n"),
    "RO": (24, "4a16c"), "SA": (24, "2n18c"), "SE": (24, "3n16n1n"), "SI": (19, "5n8n2n"),
    "SK": (24, "4n6n10n"), "TR": (26, "5n1n16c"), "QA": (29, "4a21c"), "KW": (30, "4a22c"),
    "EG": (29, "4n4n17n"), "UA": (29, "6n19c"),
}
IBAN_WEIGHTS = [("DE", 12), ("GB", 8), ("FR", 8), ("ES", 6), ("IT", 6), ("NL", 6), ("BE", 3),
                ("CH", 3), ("AT", 3), ("PL", 3), ("PT", 2), ("IE", 2), ("SE", 2), ("DK", 1),
                ("NO", 1), ("FI", 1), ("LU", 1), ("GR", 1), ("CZ", 1), ("HU", 1), ("RO", 1),
                ("SA", 1), ("AE", 1), ("TR", 1), ("BR", 1), ("HR", 1), ("SI", 1), ("SK", 1),
                ("LT", 1), ("LV", 1), ("EE", 1), ("MT", 1), ("CY", 1), ("BG", 1), ("IS", 1),
                ("IL", 1), ("MC", 1), ("AD", 1), ("QA", 1), ("KW", 1), ("EG", 1), ("UA", 1)]
BANK_CODES = {"DE": ["37040044", "10010010", "50010517", "20041133", "76026000", "12030000",
                     "70150000", "60050101", "43060967"],
              "GB": ["NWBK", "BARC", "MIDL", "LOYD", "HBUK", "MONZ", "REVO", "SRLG"],
              "IE": ["AIBK", "BOFI", "IPBS"], "NL": ["ABNA", "RABO", "INGB", "TRIO", "SNSB", "KNAB", "BUNQ"],
              "FR": ["30006", "20041", "30004", "10278", "30003", "17515"],
              "ES": ["2100", "0049", "0182", "0081", "2038", "1465"], "RO": ["BTRL", "RZBR", "INGB"]}
IBAN_EXAMPLES = ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606",
                 "NL91ABNA0417164300", "BE68539007547034", "CH9300762011623852957",
                 "ES9121000418450200051332", "IT60X0542811101000000123456", "GB29NWBK60161331926819"]


def iban_num(s):
    return int("".join(str(int(ch, 36)) for ch in s))


def iban_valid(s):
    s = s.replace(" ", "").upper()
    cc = s[:2]
    if cc not in IBAN_SPECS or len(s) != IBAN_SPECS[cc][0]:
        return False
    if not s[2:4].isdigit():
        return False
    return iban_num(s[4:] + s[:4]) % 97 == 1


for _i in IBAN_EXAMPLES:
    assert iban_valid(_i), _i


def rand_bban(cc):
    spec = IBAN_SPECS[cc][1]
    out = ""
    for cnt, kind in re.findall(r"(\d+)([nac])", spec):
        cnt = int(cnt)
        if kind == "n":
            out += rs(cnt, DIGITS)
        elif kind == "a":
            out += rs(cnt, UPPER)
        else:
            out += rs(cnt, DIGITS) if rng.random() < 0.8 else rs(cnt, UPPER + DIGITS)
    if cc in BANK_CODES and rng.random() < 0.8:
        bc = pick(BANK_CODES[cc])
        out = bc + out[len(bc):]
    if cc == "BE":  # national check digits
        x = int(out[:10]) % 97
        out = out[:10] + f"{x or 97:02d}"
    return out


def make_iban(cc):
    bban = rand_bban(cc)
    check = 98 - iban_num(bban + cc + "00") % 97
    s = f"{cc}{check:02d}{bban}"
    assert iban_valid(s) and len(s) == IBAN_SPECS[cc][0]
    return s


def iban_print(s):
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


def gen_iban(arg=None):
    args = (arg or "").split(".")
    cc = next((a for a in args if len(a) == 2 and a.isupper()), None)
    if "example" in args:
        s = pick(IBAN_EXAMPLES)
    else:
        s = make_iban(cc or wpick(IBAN_WEIGHTS))
    style = next((a for a in args if a in ("compact", "print", "lower", "lowerprint")), None)
    style = style or wpick([("print", 10), ("compact", 6), ("lower", 2), ("lowerprint", 1)])
    if style == "print":
        return iban_print(s)
    if style == "lower":
        return s.lower()
    if style == "lowerprint":
        return iban_print(s).lower()
    return s


# ---------------- SSN
def raw_ssn():
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            break
    return f"{area:03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}"


def ssn_valid(s):
    d = re.sub(r"\D", "", s)
    if len(d) != 9:
        return False
    a, g, n = int(d[:3]), int(d[3:5]), int(d[5:])
    return a not in (0, 666) and a < 900 and g != 0 and n != 0


def gen_ssn(arg=None):
    a, g, n = raw_ssn()
    style = arg or wpick([("dash", 14), ("space", 3), ("plain", 3)])
    if style == "plain":
        return a + g + n
    if style == "space":
        return f"{a} {g} {n}"
    return f"{a}-{g}-{n}"


# ---------------- IP
V6_PREFIXES = [0x20014860, 0x26064700, 0x2a032880, 0x2604a880, 0x2a001450, 0x2400cb00, 0x2607f8b0,
               0x2a0104f8, 0x26001f18, 0x2a02c7c0, 0x24068c00, 0x2c0fef78, 0x28031900, 0x2001067c]


def gen_ipv4(arg=None):
    while True:
        a = ipaddress.IPv4Address(rng.getrandbits(32))
        if a.is_global and not a.is_multicast and not a.is_reserved and str(a).split(".")[-1] not in ("0", "255"):
            return str(a)


def gen_ipv6(arg=None):
    while True:
        pre = pick(V6_PREFIXES)
        groups = [pre >> 16, pre & 0xFFFF]
        mode = rng.random()
        for i in range(6):
            if mode < 0.5 and 1 <= i <= 3:
                groups.append(0)
            elif rng.random() < 0.2:
                groups.append(0)
            else:
                groups.append(rng.getrandbits(rng.choice([4, 8, 12, 16])))
        val = 0
        for g in groups:
            val = (val << 16) | g
        a = ipaddress.IPv6Address(val)
        if not a.is_global or groups[-1] == 0:  # keep clear host addresses (no trailing '::')
            continue
        style = arg or wpick([("compressed", 8), ("exploded", 1), ("upper", 1)])
        if style == "exploded":
            return a.exploded
        if style == "upper":
            return a.compressed.upper()
        return a.compressed


def gen_ip(arg=None):
    return gen_ipv4() if rng.random() < 0.72 else gen_ipv6()


# ---------------- cloud access keys
def gen_awsid(arg=None):
    if arg == "example" or (arg is None and rng.random() < 0.04):
        return "AKIAIOSFODNN7EXAMPLE"
    prefix = "ASIA" if arg == "asia" else ("AKIA" if arg == "akia" else wpick([("AKIA", 5), ("ASIA", 1)]))
    return prefix + rs(16, B32)


def gen_gcpkey(arg=None):
    return "AIza" + "Sy" + rs_mixed(33, URLSAFE)


def gen_cloudkey(arg=None):
    return gen_awsid() if rng.random() < 0.72 else gen_gcpkey()


def gen_awssecret(arg=None):
    if rng.random() < 0.04:
        return "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    return rs_mixed(40, ALNUM + "/+" + ALNUM)  # bias toward alnum


# ---------------- source-host tokens
B62 = DIGITS + UPPER + LOWER


def base62(n, width=6):
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    return out.rjust(width, "0")


def gh_token(prefix):
    body = rs_mixed(30)
    return f"{prefix}_{body}{base62(zlib.crc32(body.encode()))}"


def gen_srctoken(arg=None):
    if arg == "gh":
        arg = wpick([("ghp", 8), ("gho", 2), ("ghu", 1), ("ghs", 2), ("ghr", 1), ("pat", 3)])
    kind = arg or wpick([("ghp", 8), ("gho", 2), ("ghu", 1), ("ghs", 2), ("ghr", 1), ("pat", 3), ("gl", 4)])
    if kind in ("ghp", "gho", "ghu", "ghs", "ghr"):
        return gh_token(kind)
    if kind == "pat":
        return "github_pat_11" + rs(9, UPPER + DIGITS) + "0" + rs_mixed(10) + "_" + rs_mixed(59)
    if kind == "gl":
        return "glpat-" + rs_mixed(20, URLSAFE)
    raise ValueError(kind)


# ---------------- chat tokens
def gen_chattoken(arg=None):
    kind = arg or wpick([("xoxb", 5), ("xoxp", 2), ("xapp", 1), ("discord", 3), ("telegram", 3)])
    if kind == "slack":
        kind = pick(["xoxb", "xoxb", "xoxp"])
    if kind == "xoxb":
        return f"xoxb-{rng.randint(10 ** 9, 10 ** 12)}-{rng.randint(10 ** 11, 10 ** 13)}-{rs_mixed(24)}"
    if kind == "xoxp":
        return (f"xoxp-{rng.randint(10 ** 9, 10 ** 12)}-{rng.randint(10 ** 9, 10 ** 12)}-"
                f"{rng.randint(10 ** 11, 10 ** 13)}-{rhex(32)}")
    if kind == "xapp":
        return f"xapp-1-A{rs(10, UPPER + DIGITS)}-{rng.randint(10 ** 12, 10 ** 13 - 1)}-{rhex(64)}"
    if kind == "discord":
        uid = str(rng.randint(10 ** 17, 13 * 10 ** 17))
        p1 = base64.b64encode(uid.encode()).decode().rstrip("=")
        return f"{p1}.{rs(6, URLSAFE)}.{rs_mixed(pick([27, 38]), URLSAFE)}"
    if kind == "telegram":
        return f"{rng.randint(10 ** 8, 8 * 10 ** 9)}:AA{rs_mixed(33, URLSAFE)}"
    raise ValueError(kind)


# ---------------- model API keys
def gen_modelkey(arg=None):
    kind = arg or wpick([("openai", 6), ("openai_proj", 6), ("anthropic", 7), ("hf", 4), ("groq", 2),
                         ("replicate", 1), ("pplx", 1), ("xai", 1)])
    if kind == "openai":
        kind = pick(["openai_legacy", "openai_proj", "openai_proj"])
    if kind == "openai_legacy":
        return "sk-" + rs_mixed(20) + "T3BlbkFJ" + rs_mixed(20)
    if kind == "openai_proj":
        pre = wpick([("sk-proj-", 6), ("sk-svcacct-", 1), ("sk-admin-", 1)])
        return pre + rs_mixed(74, URLSAFE) + "T3BlbkFJ" + rs_mixed(74, URLSAFE)
    if kind == "anthropic":
        pre = wpick([("sk-ant-api03-", 9), ("sk-ant-admin01-", 1)])
        return pre + rs_mixed(93, URLSAFE) + "AA"
    if kind == "hf":
        return "hf_" + rs_mixed(34, LETTERS)
    if kind == "groq":
        return "gsk_" + rs_mixed(52)
    if kind == "replicate":
        return "r8_" + rs_mixed(37)
    if kind == "pplx":
        return "pplx-" + rs_mixed(48)
    if kind == "xai":
        return "xai-" + rs_mixed(80)
    raise ValueError(kind)


# ---------------- JWT
JWT_EXAMPLE = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi"
               "aWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")


def gen_jwt(arg=None):
    if arg == "example":
        return JWT_EXAMPLE
    alg = wpick([("HS256", 5), ("RS256", 5), ("ES256", 2), ("HS512", 1), ("PS256", 1)])
    header = {"alg": alg, "typ": "JWT"}
    if alg != "HS256" and rng.random() < 0.7:
        header["kid"] = rs_mixed(rng.choice([16, 20, 43]), URLSAFE)
    if rng.random() < 0.3:
        header = {"typ": "JWT", "alg": alg}
    iat = rng.randint(1_650_000_000, 1_790_000_000)
    payload = {"sub": pick([str(rng.randint(1000, 10 ** 7)), f_uuid(), "auth0|" + rhex(24)]), "iat": iat,
               "exp": iat + pick([300, 900, 3600, 86400])}
    if rng.random() < 0.6:
        payload["iss"] = pick(["https://auth." + f_domain(), "https://accounts.google.com",
                               "https://login.microsoftonline.com/" + f_uuid() + "/v2.0",
                               "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_" + rs(9)])
    if rng.random() < 0.5:
        payload["aud"] = pick(["api", "account", f_uuid(), "https://api." + f_domain()])
    if rng.random() < 0.5:
        payload["scope"] = pick(["openid profile email", "read:orders write:orders", "admin"])
    if rng.random() < 0.4:
        payload["name"] = f_name()
    if rng.random() < 0.3:
        payload["roles"] = rng.sample(["admin", "user", "billing", "support"], 2)
    h = b64u(json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode())
    p = b64u(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    si = f"{h}.{p}".encode()
    if alg.startswith("HS"):
        dig = hashlib.sha256 if alg == "HS256" else hashlib.sha512
        sig = hmac.new(rbytes(32), si, dig).digest()
    elif alg == "ES256":
        sig = rbytes(64)
    else:
        sig = rbytes(256)
    return f"{h}.{p}.{b64u(sig)}"


# ---------------- private keys
def crc24(data):
    crc = 0xB704CE
    for b in data:
        crc ^= b << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def wrap(s, w):
    return [s[i:i + w] for i in range(0, len(s), w)]


def pem_lines(kind=None):
    kind = kind or wpick([("rsa", 4), ("pkcs8", 4), ("ec", 2), ("openssh", 4), ("enc", 1), ("rsa_enc", 1),
                          ("pgp", 1), ("dsa", 1)])
    if kind == "rsa":
        if rng.random() < 0.3:
            der = b"\x30\x82\x02\x5c\x02\x01\x00\x02\x81\x81\x00" + rbytes(593)
        else:
            der = b"\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01\x00" + rbytes(1180)
        return ["-----BEGIN RSA PRIVATE KEY-----"] + wrap(base64.b64encode(der).decode(), 64) + \
               ["-----END RSA PRIVATE KEY-----"]
    if kind == "rsa_enc":
        der = b"\x30\x82\x04\xa4" + rbytes(1192)
        iv = rhex(32).upper()
        return (["-----BEGIN RSA PRIVATE KEY-----", "Proc-Type: 4,ENCRYPTED", f"DEK-Info: AES-128-CBC,{iv}", ""]
                + wrap(base64.b64encode(der).decode(), 64) + ["-----END RSA PRIVATE KEY-----"])
    if kind == "pkcs8":
        if rng.random() < 0.25:  # ed25519 pkcs8
            der = b"\x30\x2e\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x70\x04\x22\x04\x20" + rbytes(32)
        else:
            der = (b"\x30\x82\x04\xbe\x02\x01\x00\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00"
                   b"\x04\x82\x04\xa8\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01\x00" + rbytes(1178))
        return ["-----BEGIN PRIVATE KEY-----"] + wrap(base64.b64encode(der).decode(), 64) + \
               ["-----END PRIVATE KEY-----"]
    if kind == "enc":
        der = (b"\x30\x82\x05\x0e\x30\x40\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x05\x0d\x30\x33\x30\x1b\x06\x09"
               b"\x2a\x86\x48\x86\xf7\x0d\x01\x05\x0c" + rbytes(1270))
        return ["-----BEGIN ENCRYPTED PRIVATE KEY-----"] + wrap(base64.b64encode(der).decode(), 64) + \
               ["-----END ENCRYPTED PRIVATE KEY-----"]
    if kind == "ec":
        der = (b"\x30\x77\x02\x01\x01\x04\x20" + rbytes(32) +
               b"\xa0\x0a\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\xa1\x44\x03\x42\x00\x04" + rbytes(64))
        return ["-----BEGIN EC PRIVATE KEY-----"] + wrap(base64.b64encode(der).decode(), 64) + \
               ["-----END EC PRIVATE KEY-----"]
    if kind == "dsa":
        der = b"\x30\x82\x01\xbb\x02\x01\x00\x02\x81\x81\x00" + rbytes(432)
        return ["-----BEGIN DSA PRIVATE KEY-----"] + wrap(base64.b64encode(der).decode(), 64) + \
               ["-----END DSA PRIVATE KEY-----"]
    if kind == "openssh":
        if rng.random() < 0.65:
            blob = (b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none\x00\x00\x00\x00\x00\x00\x00\x01"
                    b"\x00\x00\x00\x33\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + rbytes(32) +
                    b"\x00\x00\x00\x88" + rbytes(136))
        else:
            blob = (b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none\x00\x00\x00\x00\x00\x00\x00\x01"
                    b"\x00\x00\x01\x97\x00\x00\x00\x07ssh-rsa\x00\x00\x00\x03\x01\x00\x01\x00\x00\x01\x81\x00"
                    + rbytes(1200))
        return ["-----BEGIN OPENSSH PRIVATE KEY-----"] + wrap(base64.b64encode(blob).decode(), 70) + \
               ["-----END OPENSSH PRIVATE KEY-----"]
    if kind == "pgp":
        data = b"\x95\x03\xc6\x04" + rbytes(900)
        c = crc24(data).to_bytes(3, "big")
        return (["-----BEGIN PGP PRIVATE KEY BLOCK-----", ""] + wrap(base64.b64encode(data).decode(), 64)
                + ["=" + base64.b64encode(c).decode(), "-----END PGP PRIVATE KEY BLOCK-----"])
    raise ValueError(kind)


def gen_pem(arg=None):
    return "\n".join(pem_lines(arg or None))


def gen_pemjson(arg=None):
    """escaped form used inside JSON/env strings: literal backslash-n between lines"""
    return "\\n".join(pem_lines(arg or None))


def gen_pemindent(arg=None):
    n = int(arg or 4)
    lines = pem_lines(pick(["rsa", "pkcs8", "ec"]))
    ind = " " * n
    return [(None, ind), ("private_key", ("\n" + ind).join(lines))]


# ---------------- connection strings
def gen_connpw(arg=None):
    style = arg or wpick([("alnum", 6), ("urlenc", 2), ("human", 2), ("hex", 1), ("safe", 2)])
    if style == "alnum":
        return rs_mixed(rng.randint(12, 32))
    if style == "hex":
        return rhex(pick([24, 32]))
    if style == "safe":
        return rs_mixed(rng.randint(14, 28), ALNUM + "-_.~!*")
    if style == "urlenc":
        parts = [rs_mixed(rng.randint(4, 8)), pick(["%40", "%23", "%21", "%24", "%26", "%2F", "%3A"]),
                 rs_mixed(rng.randint(4, 9)), pick(["%21", "%25", "%5E", "%40", ""]), rs(rng.randint(2, 5), ALNUM)]
        return "".join(parts)
    if style == "human":
        w = pick(["Summer", "Falcon", "Orange", "Granite", "Velvet", "Harbor", "Quantum", "Maple", "Tiger"])
        return f"{w}{rng.randint(10, 2029)}{pick(['!', '.', '*', '_', '-'])}{rs(rng.randint(2, 5), ALNUM)}"
    raise ValueError(style)


CONN_SCHEMES = [("postgres", 6), ("postgresql", 5), ("mysql", 4), ("mongodb", 2), ("mongodb+srv", 3),
                ("redis", 3), ("rediss", 1), ("amqp", 2), ("amqps", 1), ("mssql", 1), ("ftp", 1),
                ("sftp", 1), ("smtp", 1), ("https", 2), ("postgresql+psycopg2", 1), ("mysql+pymysql", 1),
                ("clickhouse", 1), ("mariadb", 1), ("ldap", 1)]


def gen_connurl(arg=None):
    scheme = arg or wpick(CONN_SCHEMES)
    user = pick(USERS)
    pw = gen_connpw()
    d = f_domain()
    if scheme.startswith("mongodb+srv"):
        host, tail = f"cluster0.{rs(5, LOWER + DIGITS)}.mongodb.net", f"/{pick(DBNAMES)}?retryWrites=true&w=majority"
    elif scheme.startswith("mongodb"):
        host, tail = f"{f_host()}:27017", f"/{pick(DBNAMES)}?authSource=admin"
    elif scheme.startswith("redis"):
        host, tail = f"{f_host()}:{pick(['6379', '6380', '16379'])}", f"/{rng.randint(0, 5)}"
        if rng.random() < 0.4:
            user = pick(["", "default"])
    elif scheme.startswith("amqp"):
        host, tail = f"rabbitmq.{d}:{5671 if scheme == 'amqps' else 5672}", pick(["/%2F", "/vhost", ""])
    elif scheme.startswith("postgres"):
        host, tail = f"{f_host()}:5432", f"/{pick(DBNAMES)}" + pick(["", "?sslmode=require", "?sslmode=verify-full"])
    elif scheme.startswith(("mysql", "mariadb")):
        host, tail = f"{f_host()}:3306", f"/{pick(DBNAMES)}" + pick(["", "?charset=utf8mb4"])
    elif scheme == "mssql":
        host, tail = f"{pick(DBNAMES)}-sql.database.windows.net:1433", f"/{pick(DBNAMES)}"
    elif scheme in ("ftp", "sftp"):
        host, tail = f"files.{d}", pick(["/outgoing/", "/upload", ""])
    elif scheme == "smtp":
        host, tail = f"smtp.{d}:587", ""
    elif scheme == "clickhouse":
        host, tail = f"ch.{d}:9440", f"/{pick(DBNAMES)}?secure=true"
    elif scheme == "ldap":
        host, tail = f"ldap.{d}:389", "/dc=" + d.split(".")[0] + ",dc=com"
    else:
        host, tail = pick([f"registry.{d}", f"nexus.{d}", f"artifactory.{d}", f"git.{d}"]), pick(["/v2/", "/repository/pypi/simple", "/"])
    return [(None, f"{scheme}://{user}:"), ("connection_password", pw), (None, f"@{host}{tail}")]


# ---------------- assigned secrets
DJANGO_CHARS = LOWER + DIGITS + "!@#%^&*(-_=+)"


def gen_secret(arg=None):
    style = arg or wpick([("hex32", 3), ("hex40", 1), ("hex64", 2), ("b64_32", 3), ("b64_24", 1),
                          ("urlsafe", 4), ("alnum", 5), ("strong", 3)])
    if style == "plain":
        style = wpick([("hex32", 3), ("hex64", 1), ("urlsafe", 3), ("alnum", 5), ("b64_24", 1)])
    if style == "hex32":
        return rhex(32)
    if style == "hex40":
        return rhex(40)
    if style == "hex64":
        return rhex(64)
    if style == "b64_32":
        return base64.b64encode(rbytes(32)).decode()
    if style == "b64_24":
        return base64.b64encode(rbytes(24)).decode()
    if style == "urlsafe":
        return b64u(rbytes(rng.choice([24, 32, 36])))
    if style == "alnum":
        return rs_mixed(rng.randint(20, 40))
    if style == "strong":
        while True:
            s = rs(rng.randint(14, 24), ALNUM + ALNUM + "!%^&*-_.+=~#@")
            if re.search(r"[!%^&*\-_.+=~#@]", s) and re.search(r"\d", s) and re.search(r"[A-Z]", s):
                return s
    if style == "django":
        return "".join(rng.choice(DJANGO_CHARS) for _ in range(50))
    if style == "gocspx":
        return "GOCSPX-" + rs_mixed(28, URLSAFE)
    if style == "sendgrid":
        return "SG." + rs_mixed(22, URLSAFE) + "." + rs_mixed(43, URLSAFE)
    if style == "whsec":
        return "whsec_" + rs_mixed(32)
    raise ValueError(style)


LABELED = {
    "email": ("email", gen_email),
    "phone": ("phone", gen_phone),
    "card": ("card_number", gen_card),
    "iban": ("iban", gen_iban),
    "ssn": ("us_ssn", gen_ssn),
    "ip": ("ip_address", gen_ip),
    "ipv4": ("ip_address", gen_ipv4),
    "ipv6": ("ip_address", gen_ipv6),
    "awsid": ("cloud_access_key", gen_awsid),
    "gcpkey": ("cloud_access_key", gen_gcpkey),
    "cloudkey": ("cloud_access_key", gen_cloudkey),
    "awssecret": ("assigned_secret", gen_awssecret),
    "srctoken": ("source_host_token", gen_srctoken),
    "chattoken": ("chat_token", gen_chattoken),
    "modelkey": ("model_api_key", gen_modelkey),
    "jwt": ("jwt", gen_jwt),
    "pem": ("private_key", gen_pem),
    "pemjson": ("private_key", gen_pemjson),
    "connpw": ("connection_password", gen_connpw),
    "secret": ("assigned_secret", gen_secret),
}
COMPOSITE = {  # generators returning segment lists
    "phonelink": gen_phone_pair_link,
    "pemindent": gen_pemindent,
    "connurl": gen_connurl,
}
# category each composite contributes (for template pools)
COMPOSITE_CAT = {"phonelink": "phone", "pemindent": "private_key", "connurl": "connection_password"}

# --------------------------------------------------------------------------------------
# Negative look-alike snippets (never labelled)
# --------------------------------------------------------------------------------------


def luhn_fail_card():
    while True:
        n = raw_card()
        bad = n[:-1] + str((int(n[-1]) + rng.randint(1, 9)) % 10)
        if not luhn_ok(bad):
            return group_card(bad, pick([" ", "-", ""]))


def luhn_ok_nonnetwork():
    while True:
        p = pick(["1", "0", "99", "7"])
        L = pick([16, 16, 19])
        body = p + rs(L - len(p) - 1, DIGITS)
        n = body + luhn_digit(body)
        if not card_prefix_ok(n):
            return group_card(n, pick([" ", "", "-"]))


def bad_iban():
    cc = wpick(IBAN_WEIGHTS)
    s = make_iban(cc)
    while True:
        chk = f"{rng.randint(2, 99):02d}"
        t = s[:2] + chk + s[4:]
        if not iban_valid(t):
            break
    r = rng.random()
    if r < 0.6:
        return iban_print(t)
    if r < 0.8:
        return t
    return t.lower()


def wrong_length_iban():
    cc = wpick(IBAN_WEIGHTS)
    bban = rand_bban(cc)
    bban = bban[:-rng.randint(1, 3)] if rng.random() < 0.5 else bban + rs(rng.randint(1, 2), DIGITS)
    check = 98 - iban_num(bban + cc + "00") % 97
    t = f"{cc}{check:02d}{bban}"
    assert not iban_valid(t)
    return iban_print(t) if rng.random() < 0.6 else t


def invalid_ssn():
    a, g, n = raw_ssn()
    which = pick(["a0", "a666", "g0", "n0"])
    if which == "a0":
        a = "000"
    elif which == "a666":
        a = "666"
    elif which == "g0":
        g = "00"
    else:
        n = "0000"
    return f"{a}-{g}-{n}"


def isbn13():
    body = "978" + pick(["0", "1", "3", "2", "4"]) + rs(8, DIGITS)
    s = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body))
    d = (10 - s % 10) % 10
    full = body + str(d)
    return pick([full, f"{full[:3]}-{full[3]}-{full[4:7]}-{full[7:12]}-{full[12]}"])


def isbn10():
    body = pick(["0", "1", "3"]) + rs(8, DIGITS)
    s = sum((10 - i) * int(c) for i, c in enumerate(body))
    d = (11 - s % 11) % 11
    ch = "X" if d == 10 else str(d)
    return f"{body[0]}-{body[1:4]}-{body[4:9]}-{ch}"


PLACEHOLDER_VALUES = ["changeme", "<your key>", "<YOUR_API_KEY>", "${SECRET}", "${DB_PASSWORD}", "$API_KEY",
                      "{{ .Values.db.password }}", "{{ secrets.GITHUB_TOKEN }}", "your-api-key-here",
                      "your_api_key", "REPLACE_ME", "TODO", "xxxxxx", "********", "<redacted>", "[REDACTED]",
                      "***", "<password>", "PASSWORD", "secret", "example", "dummy", "your-secret-key",
                      "insert-token-here", "<token>", "sk-...", "ghp_...", "${{ secrets.SLACK_BOT_TOKEN }}",
                      "%(password)s", "{password}", "$(cat /run/secrets/db_password)", "<%= ENV['API_KEY'] %>",
                      "CHANGE_ME_IN_PROD", "please-set-me", "null", "none", "test", "password", "foobar",
                      "xoxb-your-token", "<insert key>", "...", "${env:API_TOKEN}", "#{api_key}",
                      "vault:secret/data/prod/db#password", "ENV[\"SECRET_KEY\"]", "$(SECRET_KEY)",
                      "<paste-your-token>", "YOUR_TOKEN_HERE", "abc123", "12345", "admin", "letmein"]
SECRET_KEYNAMES = ["password", "DB_PASSWORD", "API_KEY", "client_secret", "SECRET_KEY", "token", "GITHUB_TOKEN",
                   "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "SLACK_BOT_TOKEN", "JWT_SECRET", "api_token",
                   "apiKey", "secret", "auth_token", "STRIPE_SECRET_KEY", "REDIS_PASSWORD", "ANTHROPIC_API_KEY",
                   "private_key", "access_token", "webhook_secret", "HF_TOKEN"]


def placeholder_assignment():
    k = pick(SECRET_KEYNAMES)
    v = pick(PLACEHOLDER_VALUES)
    fmt = pick(["env", "yaml", "json", "py", "toml", "export"])
    if fmt == "env":
        return f"{k.upper()}={v}"
    if fmt == "export":
        return f'export {k.upper()}="{v}"'
    if fmt == "yaml":
        return f"{k.lower()}: {v}" if not v.startswith(("{", "*", "[", "%", "<%", "#", "!")) else f'{k.lower()}: "{v}"'
    if fmt == "json":
        return json.dumps({k: v})[1:-1]
    if fmt == "toml":
        return f'{k.lower()} = "{v}"'
    return f"{k.lower()} = os.environ[\"{k.upper()}\"]" if rng.random() < 0.5 else f'{k.lower()} = "{v}"'


def code_secret_ref():
    k = pick(SECRET_KEYNAMES)
    return pick([f'{k.lower()} = os.getenv("{k.upper()}")', f"const {k} = process.env.{k.upper()};",
                 f'{k.lower()} := os.Getenv("{k.upper()}")', f'let {k.lower()} = std::env::var("{k.upper()}")?;',
                 f"{k.lower()} = get_secret(\"prod/{k.lower()}\")", f"{k}: !Ref {k.title().replace('_', '')}Param",
                 f"- name: {k.upper()}\n  valueFrom:\n    secretKeyRef:\n      name: app-secrets\n      key: {k.lower()}",
                 f"{k.upper()}: ${{{{ secrets.{k.upper()} }}}}", f"{k.lower()} = config[\"{k.lower()}\"]",
                 f"String {k} = System.getenv(\"{k.upper()}\");"])


def masked_value():
    return pick([f"**** **** **** {rng.randint(1000, 9999)}", f"card ending in {rng.randint(1000, 9999)}",
                 f"XXX-XX-{rng.randint(1000, 9999)}", f"***-**-{rng.randint(1000, 9999)}",
                 f"sk-...{rs(4)}", "AKIA****************", "ghp_************************************",
                 f"xoxb-****-{rs(4)}", f"DE** **** **** **** **{rng.randint(10, 99)} {rng.randint(10, 99)}",
                 f"+1 (***) ***-{rng.randint(1000, 9999)}", f"j***@{f_domain()}", f"•••• {rng.randint(1000, 9999)}",
                 f"sk-ant-...{rs(6)}", f"IBAN ending {rng.randint(1000, 9999)}", "eyJ...", "-----BEGIN PRIVATE KEY----- (redacted)"])


def version_like():
    a, b, c = rng.randint(0, 30), rng.randint(0, 40), rng.randint(0, 300)
    return pick([f"v{a}.{b}.{c}", f"Python 3.{rng.randint(8, 13)}.{rng.randint(0, 12)}",
                 f"node v{rng.randint(14, 22)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
                 f"Build 10.0.{rng.randint(19041, 26100)}.{rng.randint(256, 4999)}",
                 f"kernel 6.{rng.randint(1, 9)}.0-{rng.randint(10, 60)}-generic",
                 f"Chrome {rng.randint(110, 130)}.0.{rng.randint(5000, 6999)}.{rng.randint(256, 299)}",
                 f"{a}.{b}.{c}-beta.{rng.randint(1, 9)}+exp.sha.{rhex(7)}", f"{a}.{b}.{c}-rc.{rng.randint(1, 5)}",
                 f"version {a}.{b}", f"iOS {rng.randint(15, 18)}.{rng.randint(0, 6)}.{rng.randint(1, 3)}",
                 f"go1.{rng.randint(18, 23)}.{rng.randint(0, 9)}", f"openssl 3.{rng.randint(0, 3)}.{rng.randint(0, 14)}",
                 f"{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(1000, 99999)}"])


def oid_like():
    return pick([f"1.3.6.1.4.1.{rng.randint(300, 60000)}.{rng.randint(1, 30)}.{rng.randint(1, 20)}",
                 "1.2.840.113549.1.1.11", "1.2.840.10045.3.1.7", "2.5.4.3.10", "1.3.6.1.5.5.7.3.1",
                 f"2.16.840.1.{rng.randint(100000, 114000)}.{rng.randint(1, 9)}", "1.3.132.0.34",
                 f"urn:oid:2.16.840.1.113883.{rng.randint(1, 19)}.{rng.randint(1, 999)}"])


def date_time_like():
    y, m, d = rng.randint(2000, 2026), rng.randint(1, 12), rng.randint(1, 28)
    hh, mm, ss = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    return pick([f"{y}-{m:02d}-{d:02d}", f"{d:02d}/{m:02d}/{y}", f"{m}/{d}/{y} {hh % 12 + 1}:{mm:02d} PM",
                 f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{rng.randint(0, 999999):06d}Z",
                 f"{hh:02d}:{mm:02d}:{ss:02d}", f"{hh:02d}:{mm:02d}:{ss:02d}.{rng.randint(0, 999):03d}+02:00",
                 f"{d}.{m}.{y}", f"{y}{m:02d}{d:02d}", f"{y}/{m:02d}/{d:02d} {hh:02d}:{mm:02d}",
                 f"epoch {rng.randint(1_500_000_000, 1_800_000_000)}",
                 f"ts={rng.randint(1_500_000_000_000, 1_800_000_000_000)}",
                 f"Q{rng.randint(1, 4)} {y}", f"week {rng.randint(1, 52)} of {y}", f"{y}年{m}月{d}日",
                 f"{hh:02d}h{mm:02d}", f"P{rng.randint(1, 30)}DT{rng.randint(1, 23)}H"])


def size_like():
    return pick([f"{rng.randint(1, 999)}.{rng.randint(0, 9)} GB", f"{rng.randint(1, 4096)} KiB",
                 f"{rng.randint(1, 9999):,} bytes", f"{rng.randint(1, 999)} MB", f"{rng.randint(1, 64)}Gi",
                 f"{rng.randint(1, 20)}.{rng.randint(0, 99)} TB", f"{rng.randint(100, 900)}m CPU"])


def color_like():
    return pick([f"#{rs(6, HEX)}", f"#{rs(3, 'ABCDEF0123456789')}", f"#{rs(6, 'ABCDEF0123456789')}",
                 f"rgb({rng.randint(0, 255)}, {rng.randint(0, 255)}, {rng.randint(0, 255)})",
                 f"#{rs(8, HEX)}"])


def tracking_like():
    return pick([f"1Z{rs(3, UPPER + DIGITS)}{rs(3, DIGITS)}{rs(2, UPPER)}{rs(8, DIGITS)}",
                 f"{rng.randint(1, 9)}{rs(11, DIGITS)}",
                 "9400 " + " ".join(rs(4, DIGITS) for _ in range(4)) + " " + rs(2, DIGITS),
                 f"JD{rs(18, DIGITS)}", f"{rs(2, UPPER)}{rs(9, DIGITS)}{pick(['DE', 'GB', 'US', 'CN', 'FR'])}",
                 f"TBA{rs(12, DIGITS)}", f"{rs(4, DIGITS)} {rs(4, DIGITS)} {rs(4, DIGITS)}"])


def order_like():
    return pick([f"{rng.randint(100, 999)}-{rs(7, DIGITS)}-{rs(7, DIGITS)}", f"ORD-{rng.randint(2019, 2026)}-{rs(6, DIGITS)}",
                 f"#{rs(6, DIGITS)}", f"PO-{rs(5, DIGITS)}", f"INV-{rng.randint(2019, 2026)}-{rs(5, DIGITS)}",
                 f"RE-{rs(6, DIGITS)}", f"F{rng.randint(2019, 2026)}{rs(4, DIGITS)}", f"CASE-{rs(8, DIGITS)}",
                 f"TKT-{rs(5, DIGITS)}", f"RMA {rs(6, DIGITS)}", f"#{rs(3, UPPER)}-{rs(4, DIGITS)}"])


def hash_like():
    return pick([f"sha256:{rhex(64)}", f"md5 {rhex(32)}", f"commit {rhex(40)}", f"{rhex(7)}",
                 f"integrity=\"sha384-{base64.b64encode(rbytes(48)).decode()}\"",
                 f"ETag: \"{rhex(32)}\"", f"Digest: sha-256={base64.b64encode(rbytes(32)).decode()}",
                 f"sha1={rhex(40)}", f"blake2b:{rhex(64)}", f"merge {rhex(7)} into main"])


def pubkey_like():
    k = pick(["ed", "rsa", "pem", "cert", "ecdsa"])
    who = f"{pick(USERS)}@{pick(['laptop', 'buildbox', 'mbp', 'ci-runner', 'devvm'])}"
    if k == "ed":
        return "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + rs(43, B64) + " " + who
    if k == "rsa":
        return "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQ" + rs(300, B64) + " " + who
    if k == "ecdsa":
        return "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBB" + rs(87, B64) + "= " + who
    if k == "pem":
        der = b"\x30\x82\x01\x22\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00\x03\x82\x01\x0f\x00" + rbytes(270)
        return "\n".join(["-----BEGIN PUBLIC KEY-----"] + wrap(base64.b64encode(der).decode(), 64) + ["-----END PUBLIC KEY-----"])
    der = b"\x30\x82\x03\x50\x30\x82\x02\x38\xa0\x03\x02\x01\x02" + rbytes(600)
    return "\n".join(["-----BEGIN CERTIFICATE-----"] + wrap(base64.b64encode(der).decode(), 64) + ["-----END CERTIFICATE-----"])


def phone_like_invalid():
    return pick([f"+1 (1{rs(2, DIGITS)}) {rs(3, DIGITS)}-{rs(4, DIGITS)}", "(000) 000-0000", "123-456-7890",
                 f"ext. {rng.randint(100, 9999)}", f"Room {rng.randint(100, 2999)}", f"Flight LH {rng.randint(100, 999)}",
                 f"PIN: {rs(4, DIGITS)}", f"postcode {rng.randint(10000, 99999)}",
                 f"zip {rng.randint(10000, 99999)}-{rs(4, DIGITS)}", "+44 0000 000000", "+49 000 0000000",
                 f"building {rng.randint(1, 40)}, floor {rng.randint(1, 30)}", f"gate B{rng.randint(1, 60)}",
                 f"Kd.-Nr. {rs(6, DIGITS)}"])


def ip_like():
    return pick([f"section {rng.randint(1, 9)}.{rng.randint(1, 9)}.{rng.randint(1, 9)}",
                 f"10.0.{rng.randint(17000, 26000)}.{rng.randint(300, 4000)}", f"{rng.randint(1, 9)}.{rng.randint(10, 99)}.{rng.randint(256, 999)}.{rng.randint(1, 9)}",
                 f"{rng.randint(256, 999)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}",
                 ":".join(rs(2, "0123456789ABCDEF") for _ in range(6)), "-".join(rs(2, HEX) for _ in range(6)),
                 pick(["std::vector<std::string>", "Foo::Bar::baz()", "crate::config::Settings", "a::b::c", "Http::Client"]),
                 f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
                 f"1.{rng.randint(2, 9)}.{rng.randint(2, 9)}", f"v{rng.randint(1, 4)}.{rng.randint(0, 9)}.{rng.randint(0, 99)}.{rng.randint(0, 999)}.{rng.randint(0, 9)}"])


def email_like():
    return pick([f"@{fold(pick(FIRST)).lower()}", "@channel", "@here", "@media (max-width: 600px)", "@Override",
                 "@app.route(\"/login\")", "npm i @types/node", f"logo@{pick(['2x', '3x'])}.png", f"icon@{pick(['2x', '3x'])}.webp",
                 f"{pick(USERS)}@{pick(['laptop', 'buildbox', 'devbox'])}", "@pytest.fixture", "@import url(theme.css);",
                 f"actions/checkout@v{rng.randint(2, 4)}", f"{pick(['lodash', 'react', 'typescript'])}@{rng.randint(1, 18)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
                 f"nginx@sha256:{rhex(64)}", "@dataclass(frozen=True)", "user[at]example[dot]org is not how we write emails"])


def conn_like():
    u, h, db = pick(USERS), f_host(), pick(DBNAMES)
    return pick([f"postgres://{u}@{h}:5432/{db}", f"redis://{h}:6379/0", f"postgresql://{u}:${{DB_PASSWORD}}@{h}/{db}",
                 "mysql://root:<password>@localhost:3306/app", f"mongodb://{u}:****@{h}:27017",
                 f"amqp://{u}:%s@{h}:5672/", f"https://{u}:{{password}}@{h}/", "postgres://user:password@localhost/mydb",
                 f"postgresql://{u}:$PGPASSWORD@{h}/{db}", f"jdbc:postgresql://{h}:5432/{db}", f"sqlite:///./{db}.db",
                 f"mongodb+srv://{u}:<db_password>@cluster0.{rs(5, LOWER + DIGITS)}.mongodb.net/",
                 f"https://{f_domain()}/api/v1/{db}?page=2", f"ssh://git@{f_domain().split('.')[0]}-git:2222/{pick(ORGS)}/{pick(REPOS)}",
                 f"redis://:{{{{REDIS_PASSWORD}}}}@{h}:6379", f"postgres://{u}:[REDACTED]@{h}/{db}"])


def keyword_like():
    return pick([f"max_tokens={pick([256, 1024, 4096, 8192])}", f"token_count: {rng.randint(10, 9000)}",
                 f"password_min_length: {rng.randint(8, 16)}", "secret_name: prod-db-credentials",
                 "api_key_header: X-API-Key", "SECRET_KEY_BASE must be set in production",
                 f"token expires in {pick([300, 3600, 86400])} seconds", "docker login --password-stdin",
                 "Forgot password?", "password: required, minimum 12 characters", "auth: api_key",
                 "token_type: Bearer", "grant_type=client_credentials", "key_rotation_days: 90",
                 f"idempotency_key: {f_uuid()}", f"client_id: {f_uuid()}", f"tenant_id: {f_uuid()}",
                 f"request_id=req_{rs_mixed(24)}", f"trace_id={rhex(32)}", f"X-Request-Id: {f_uuid()}",
                 f"publishable_key: pk_test_{rs_mixed(24)}", "primary_key: id", f"cache_key: user:{rng.randint(1, 99999)}:profile",
                 f"session_timeout: {rng.randint(5, 60)}m", "password_reset_url: /account/reset",
                 "secretRef: db-credentials", "keyId: alias/prod-kms", "kms_key_alias: alias/app-data",
                 "token_endpoint: https://auth.example.com/oauth2/token", "use_password_auth: false",
                 "github_token_scope: repo", "secrets: inherit", f"channel C0{rs(8, UPPER + DIGITS)}",
                 f"user U0{rs(8, UPPER + DIGITS)}", "PasswordAuthentication no"])


def prefix_talk():
    return pick(["GitHub classic tokens start with ghp_ followed by 36 characters.",
                 "AWS access key IDs begin with AKIA (long-term) or ASIA (temporary credentials).",
                 "Slack bot tokens begin with xoxb- and user tokens with xoxp-.",
                 "JWTs often start with eyJ because that is base64 for '{\"'.",
                 "OpenAI keys look like sk-... and Anthropic keys like sk-ant-...",
                 "Hugging Face tokens start with hf_ — never commit them.",
                 "GitLab personal access tokens use the glpat- prefix.",
                 "The regex for Slack tokens is xox[baprs]-([0-9a-zA-Z]{10,48}).",
                 "Google API keys begin with AIza and are 39 characters long.",
                 "A PEM private key starts with -----BEGIN and a header line.",
                 "Use hf_transfer for faster downloads (pip install hf_transfer).",
                 "Rotate any sk-proj key that was pasted into a ticket.",
                 "Telegram bot tokens have the form <bot_id>:<secret>.",
                 "Discord tokens are three base64 segments separated by dots."])


def data_uri_like():
    return pick(["data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA" + rs(60, B64) + "==",
                 "data:font/woff2;base64,d09GMgABAAAAA" + rs(80, B64),
                 "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9 (header only)",
                 "base64 -d <<< '" + base64.b64encode(pick([b'hello world', b'{"ok":true}', b'release notes v2'])).decode() + "'",
                 f"cursor=\"{b64u(json.dumps({'page': rng.randint(2, 99), 'after': rng.randint(100, 99999)}).encode())}\"",
                 f"nextPageToken: {b64u(rbytes(12))}"])


def arn_like():
    return pick([f"arn:aws:iam::{rng.randint(10 ** 11, 10 ** 12 - 1)}:role/{pick(['Deploy', 'ReadOnly', 'LambdaExec'])}",
                 f"arn:aws:s3:::{pick(ORGS)}-{pick(['logs', 'assets', 'backups'])}/{rng.randint(2020, 2026)}/",
                 f"projects/{f_proj()}/locations/{pick(['us-central1', 'europe-west1'])}",
                 f"/subscriptions/{f_uuid()}/resourceGroups/rg-{pick(SERVICES)}",
                 f"pod/{pick(SERVICES)}-{rs(9, LOWER + DIGITS)}-{rs(5, LOWER + DIGITS)}",
                 f"i-{rhex(17)}", f"vpc-{rhex(8)}", f"sg-{rhex(17)}", f"ami-{rhex(17)}"])


def money_misc():
    return pick([f_price(), f"{rng.randint(1, 99)}% off", f"3.14159", f"6.022e23", f"x = 2^{rng.randint(8, 64)} - 1",
                 f"lat={rng.uniform(-80, 80):.4f}, lon={rng.uniform(-170, 170):.4f}",
                 f"{rng.randint(1, 999)} ms p99", f"{rng.randint(1, 100)}°C", f"score {rng.uniform(0, 1):.3f}",
                 f"VAT {rng.randint(5, 25)}%", f"ISBN {isbn13()}", f"ISBN {isbn10()}", f"EIN {rs(2, DIGITS)}-{rs(7, DIGITS)}",
                 f"SKU {rs(3, UPPER)}-{rs(5, DIGITS)}", f"UUID {f_uuid()}", f"{rng.randint(1, 9)}x{rng.randint(10, 99)} mm"])


NEG_RAW = {
    "order": order_like,
    "invoice": order_like,
    "tracking": tracking_like,
    "luhnfail": luhn_fail_card,
    "luhnnonnet": luhn_ok_nonnetwork,
    "badiban": bad_iban,
    "lenIban": wrong_length_iban,
    "badssn": invalid_ssn,
    "version": version_like,
    "oid": oid_like,
    "date": date_time_like,
    "size": size_like,
    "color": color_like,
    "hash": hash_like,
    "uuid": f_uuid,
    "isbn": lambda: pick([isbn13(), isbn10()]),
    "placeholder": placeholder_assignment,
    "secretref": code_secret_ref,
    "masked": masked_value,
    "pubkey": pubkey_like,
    "phonelike": phone_like_invalid,
    "iplike": ip_like,
    "emaillike": email_like,
    "connlike": conn_like,
    "keyword": keyword_like,
    "prefixtalk": prefix_talk,
    "datauri": data_uri_like,
    "arn": arn_like,
    "misc": money_misc,
}
NEG_PHRASE_PREFIX = {
    "order": ["Order", "order", "Bestellung", "Commande", "Pedido", "注文番号", "Invoice", "Rechnung Nr.", "Facture n°", "Ticket"],
    "tracking": ["tracking", "Tracking #", "Sendungsnummer", "waybill", "追跡番号"],
    "luhnfail": ["reference", "Ref:", "the number", "account id", "loyalty no.", "card (fails Luhn)"],
    "luhnnonnet": ["Member ID", "Transaction ID", "Gift card serial", "Batch"],
    "badiban": ["IBAN (invalid checksum):", "rejected IBAN", "IBAN?", "Kontonummer (ungültig)"],
    "lenIban": ["malformed IBAN", "IBAN fragment", "truncated"],
    "badssn": ["invalid SSN", "SSN field rejected", "test SSN"],
    "uuid": ["id", "request", "correlation id", "uuid"],
    "isbn": ["ISBN"],
}


def gen_neg(arg=None):
    """⟦neg:kind⟧ -> bare look-alike value; ⟦neg⟧ -> random look-alike phrase"""
    if arg:
        return NEG_RAW[arg]()
    kind = pick(list(NEG_RAW))
    v = NEG_RAW[kind]()
    if kind in NEG_PHRASE_PREFIX:
        v = pick(NEG_PHRASE_PREFIX[kind]) + " " + v
    return v


FILLERS["b64"] = lambda a=None: base64.b64encode(rbytes(int(a or 32))).decode()
FILLERS["fp"] = lambda a=None: "SHA256:" + base64.b64encode(rbytes(32)).decode().rstrip("=")
FILLERS["latlon"] = lambda a=None: f"{rng.uniform(-60, 60):.4f}, {rng.uniform(-170, 170):.4f}"


FILLERS["neg"] = gen_neg
FILLERS["lookalike"] = gen_neg

# --------------------------------------------------------------------------------------
# Template engine
# --------------------------------------------------------------------------------------
PH = re.compile(r"⟦([a-z0-9_]+)(?::([^⟧]*))?⟧")


def fill(tpl):
    segs = []
    pos = 0
    for m in PH.finditer(tpl):
        segs.append((None, tpl[pos:m.start()]))
        name, arg = m.group(1), m.group(2)
        if name in LABELED:
            cat, fn = LABELED[name]
            segs.append((cat, fn(arg)))
        elif name in COMPOSITE:
            segs.extend(COMPOSITE[name](arg))
        elif name in FILLERS:
            segs.append((None, FILLERS[name](arg)))
        else:
            raise KeyError(name)
        pos = m.end()
    segs.append((None, tpl[pos:]))
    return segs


def template_cats(tpl):
    cats = set()
    for m in PH.finditer(tpl):
        n = m.group(1)
        if n in LABELED:
            cats.add(LABELED[n][0])
        elif n in COMPOSITE_CAT:
            cats.add(COMPOSITE_CAT[n])
    return cats


def build(segs):
    parts, labels, off = [], [], 0
    for cat, s in segs:
        if cat:
            labels.append([cat, off, off + len(s), s])
        parts.append(s)
        off += len(s)
    text = "".join(parts)
    for cat, a, b, s in labels:
        assert text[a:b] == s, (cat, a, b, s)
        assert s and s == s.strip(), (cat, repr(s))
    labels.sort(key=lambda x: x[1])
    for x, y in zip(labels, labels[1:]):
        assert x[2] <= y[1], ("overlap", x, y)
    return text, [[c, a, b] for c, a, b, _ in labels], [(c, s) for c, a, b, s in labels]


# ======================================================================================
# TEMPLATES
# ======================================================================================
# Templates: ⟦name⟧ / ⟦name:arg⟧ placeholders.  Labelled placeholders:
# email phone card iban ssn ip ipv4 ipv6 awsid gcpkey cloudkey awssecret srctoken chattoken modelkey jwt
# pem pemjson pemindent connurl connpw secret phonelink.  Everything else is unlabelled filler.

PREFIXES = ["hey, ", "FYI: ", "Quick one — ", "Hi! ", "👋 ", "ok so ", "Re: ", "> ", "update: ", "🇩🇪 ",
            "Bonjour, ", "Hola, ", "嗨，", "Привет! ", "[bot] ", "User: ", "**Note:** ", "sorry for the spam — "]
SUFFIXES = [" thx", " 🙏", "\n\nSent from my iPhone", "\n\n-- \nsent via mobile", " (urgent)", "\n\nThanks!",
            " 😅", "\n\nBest,\n⟦first⟧", " ...", "\n\n[ticket auto-closed]"]
# (suffix placeholders are rendered literally: keep only simple text)
SUFFIXES = [s.replace("⟦first⟧", "Sam") for s in SUFFIXES]

POS_TEMPLATES = [
    # ============================== email ==============================
    "⟦email⟧",
    "Hi ⟦first⟧, can you send the contract to ⟦email⟧? Thanks!",
    "Contact: ⟦name⟧ <⟦email⟧>",
    "From: ⟦name⟧ <⟦email⟧>\nTo: ⟦email⟧\nCc: ⟦email⟧\nSubject: Re: Q3 forecast\n\nSee attached, let me know if the numbers look right.",
    "please cc ⟦email⟧ and ⟦email⟧ on the thread",
    "[email me](mailto:⟦email⟧)",
    "My email is ⟦email⟧.",
    "You can reach our DPO (⟦email⟧) for GDPR requests.",
    '{"id": ⟦num⟧, "name": "⟦name⟧", "email": "⟦email⟧", "verified": true}',
    "id,name,email,signup_date\n⟦num⟧,⟦name⟧,⟦email⟧,⟦isodate⟧\n⟦num⟧,⟦name⟧,⟦email⟧,⟦isodate⟧",
    "| Name | Email | Role |\n|---|---|---|\n| ⟦name⟧ | ⟦email⟧ | Owner |\n| ⟦name⟧ | ⟦email⟧ | Viewer |",
    "Bitte schicken Sie die Rechnung an ⟦email⟧, vielen Dank.",
    "Mi correo es ⟦email⟧, escríbeme cuando puedas 🙂",
    "メールアドレスは⟦email⟧です。よろしくお願いします。",
    "请把文件发到⟦email⟧，谢谢！",
    "Пишите на ⟦email⟧ — отвечу сегодня.",
    "Author: ⟦name⟧ <⟦email⟧>\nDate:   ⟦date⟧\n\n    fix: handle empty payload in ⟦svc⟧",
    "[user]\n\tname = ⟦name⟧\n\temail = ⟦email⟧",
    'send_mail("Welcome", body, "⟦email⟧", ["⟦email⟧"], fail_silently=False)',
    "Reply-To: ⟦email⟧",
    'Tool result (crm.search): [{"contact": "⟦name⟧", "emails": ["⟦email⟧", "⟦email⟧"], "company": "⟦company⟧"}]',
    "ping me at ⟦email⟧",
    "⟦email⟧ wrote:\n> can we move the sync to Thursday?\n\nSure, Thursday works.",
    "يرجى التواصل عبر البريد ⟦email⟧ شكراً",
    "이메일: ⟦email⟧",
    "Envoyez votre CV à ⟦email⟧ avant le ⟦date⟧.",
    "Stuur het naar ⟦email⟧ of bel even.",
    "git commit --author=\"⟦name⟧ <⟦email⟧>\" -m \"wip\"",
    "⟦ts⟧ INFO mailer: delivered message to=<⟦email⟧> relay=mx.⟦domain⟧ status=sent",
    "Subscribers added: ⟦email⟧; ⟦email⟧; ⟦email⟧",
    "Email:⟦email⟧",
    "- owner: ⟦email⟧\n- backup: ⟦email⟧",
    "<a href=\"mailto:⟦email⟧?subject=Hello\">Write to us</a>",
    "Il mio indirizzo è ⟦email⟧ (uso anche ⟦email⟧ per lavoro).",
    "\"⟦email⟧\" is already registered. Try logging in instead.",

    # ============================== phone ==============================
    "⟦phone⟧",
    "Call me at ⟦phone:US⟧ after 5pm.",
    "Tel: ⟦phone⟧ | Fax: ⟦phone⟧",
    "My number changed, it's now ⟦phone⟧ (WhatsApp too).",
    "Rufen Sie mich gerne unter ⟦phone:DE⟧ an.",
    "Mon portable : ⟦phone:FR⟧",
    "Il mio numero è ⟦phone:IT⟧, chiamami pure.",
    "Mi número es ⟦phone:ES⟧ / ⟦phone:MX⟧",
    "電話番号：⟦phone:JP⟧",
    "联系电话：⟦phone:CN⟧",
    "Позвоните мне: ⟦phone:RU⟧",
    "मेरा नंबर ⟦phone:IN⟧ है",
    "Contact ⟦name⟧ on ⟦phone:GB⟧ or email ⟦email⟧",
    "Save my number: ⟦phonelink⟧",
    '{"customer": {"name": "⟦name⟧", "phone": "⟦phone⟧", "mobile": "⟦phone⟧"}}',
    "--\n⟦name⟧\nSenior Account Manager, ⟦company⟧\nM: ⟦phone⟧\nO: ⟦phone:US⟧\n⟦email⟧",
    "⟦ts⟧ INFO sms.send to=⟦phone:e164⟧ status=queued sid=SM⟦hex:32⟧",
    "BEGIN:VCARD\nVERSION:3.0\nFN:⟦name⟧\nTEL;TYPE=CELL:⟦phone⟧\nEMAIL:⟦email⟧\nEND:VCARD",
    "Emergency contact: ⟦name⟧ (⟦phone⟧)",
    "Liga para ⟦phone:BR⟧ ou manda mensagem no WhatsApp",
    "Bel me op ⟦phone:NL⟧!",
    "Zadzwoń: ⟦phone:PL⟧",
    "Reach the on-call at ⟦phone:US⟧, ⟦phone:GB⟧ for EMEA.",
    "ph: ⟦phone⟧; alt: ⟦phone⟧",
    "<a href=\"tel:⟦phone:rfc3966⟧\">Call us</a>",
    "Phone,Name\n\"⟦phone⟧\",⟦name⟧\n\"⟦phone⟧\",⟦name⟧",
    "Ring ⟦phone:SE⟧ eller ⟦phone:DK⟧",
    "📞 ⟦phone⟧",
    "the courier will call ⟦phone:AU⟧ before delivery",
    "Support hotline (24/7): ⟦phone:US⟧",
    "Numéro de téléphone:⟦phone:BE⟧",
    "Telefon: ⟦phone:AT⟧ · Mobil: ⟦phone:CH⟧",
    "Tool `lookup_customer` returned: name=⟦name⟧, phone=⟦phone⟧, tier=gold",
    "Can you text me? ⟦phone:CA⟧",
    "WhatsApp: ⟦phone:e164⟧",
    "電話は⟦phone:KR⟧までお願いします",
    "Telefonnummer: ⟦phone:DE⟧ (Durchwahl bitte über Zentrale)",
    "mobile: '⟦phone:IE⟧'",

    # ============================== card_number ==============================
    "⟦card⟧",
    "Card number: ⟦card⟧, exp 09/27",
    "Please charge my Visa ⟦card:visa⟧ for the deposit.",
    "AMEX ⟦card:amex⟧ exp 11/26, billing zip on file",
    '{"payment_method": {"type": "card", "number": "⟦card:plain⟧", "exp_month": 4, "exp_year": 2028}}',
    "⟦ts⟧ ERROR payments: charge declined pan=⟦card:plain⟧ amount=⟦price⟧ reason=insufficient_funds",
    "Meine Kreditkartennummer lautet ⟦card⟧.",
    "Numéro de carte : ⟦card⟧",
    "カード番号は⟦card⟧です",
    "for the sandbox use ⟦card:test⟧ with any future expiry",
    "Replace the card ending 4242 with ⟦card⟧ please",
    "cc: ⟦card⟧ / ⟦card⟧",
    "Mastercard: ⟦card:mc⟧\nExpiry: 03/29\nName on card: ⟦name⟧",
    "| Customer | Card | Exp |\n|---|---|---|\n| ⟦name⟧ | ⟦card⟧ | 08/27 |\n| ⟦name⟧ | ⟦card⟧ | 01/30 |",
    "Número de tarjeta: ⟦card⟧ (vence 12/28)",
    "Kartu kredit saya ⟦card⟧",
    "(⟦card:plain⟧)",
    "stripe test: ⟦card:test.plain⟧",
    "my discover is ⟦card:discover⟧, the jcb one ⟦card:jcb⟧",
    "Diners Club ⟦card:diners⟧",
    "银联卡号：⟦card:unionpay⟧",
    "card=⟦card:plain⟧&cvv=***&exp=0927",
    "Tool call result: {\"status\": \"failed\", \"card\": \"⟦card⟧\", \"code\": \"card_declined\"}",
    "Номер карты: ⟦card⟧",
    "The customer read out ⟦card⟧ over the phone, can you process it?",
    "Credit Card\n⟦card⟧\nValid thru 05/29",
    "Karta: ⟦card:visa⟧",
    "ccnum: \"⟦card:plain⟧\"",

    # ============================== iban ==============================
    "IBAN: ⟦iban⟧",
    "Please wire the deposit to ⟦iban:DE⟧ (BIC ⟦bic⟧).",
    "Bankverbindung: ⟦name⟧, IBAN ⟦iban:DE⟧, Sparkasse ⟦city⟧",
    "Merci de virer le montant sur le compte ⟦iban:FR⟧.",
    "Mi IBAN es ⟦iban:ES⟧",
    "https://pay.⟦domain⟧/sepa?iban=⟦iban:compact⟧&amount=120.00",
    '{"beneficiary": "⟦name⟧", "iban": "⟦iban⟧", "currency": "EUR"}',
    "Rekeningnummer: ⟦iban:NL⟧",
    "Numer konta: ⟦iban:PL⟧",
    "⟦iban⟧ is the new account, the old one (⟦iban⟧) is closed.",
    "Payee IBAN — ⟦iban:GB⟧",
    "<DbtrAcct><Id><IBAN>⟦iban:compact⟧</IBAN></Id></DbtrAcct>",
    "⟦iban⟧",
    "IBAN ⟦iban:IT⟧ intestato a ⟦name⟧",
    "Conta: ⟦iban:PT⟧",
    "Kontonummer: ⟦iban:CH⟧ (UBS)",
    "docs example account: ⟦iban:example⟧",
    "name;iban;amount\n⟦name⟧;⟦iban:compact⟧;⟦price⟧\n⟦name⟧;⟦iban:compact⟧;⟦price⟧",
    "Refund to ⟦iban:lower⟧ pls",
    "IBAN:⟦iban:print⟧",
    "الآيبان: ⟦iban:SA⟧",
    "Hesap (IBAN): ⟦iban:TR⟧",
    "Bank details\nAccount holder: ⟦name⟧\nIBAN: ⟦iban⟧\nBIC/SWIFT: ⟦bic⟧",
    "Tool `sepa.validate` → {\"iban\": \"⟦iban:compact⟧\", \"valid\": true, \"bank\": \"⟦company⟧\"}",
    "Überweisung an ⟦iban:AT⟧ bis ⟦date⟧",

    # ============================== us_ssn ==============================
    "SSN: ⟦ssn⟧",
    "My social security number is ⟦ssn⟧",
    "Employee: ⟦name⟧, SSN ⟦ssn⟧, DOB ⟦isodate⟧",
    "ssn=⟦ssn:plain⟧",
    '{"applicant": {"name": "⟦name⟧", "ssn": "⟦ssn⟧", "dob": "⟦isodate⟧"}}',
    "a Employee's social security number\n⟦ssn⟧",
    "SS# ⟦ssn⟧",
    "Número de Seguro Social (EE. UU.): ⟦ssn⟧",
    "Taxpayer ID (SSN): ⟦ssn⟧",
    "⟦ssn⟧",
    "last4 isn't enough, they need the full SSN (⟦ssn⟧).",
    "name,ssn,hire_date\n⟦name⟧,⟦ssn⟧,⟦isodate⟧\n⟦name⟧,⟦ssn⟧,⟦isodate⟧",
    "Social Security No.: ⟦ssn:space⟧",
    "Please verify: SSN ⟦ssn⟧ / phone ⟦phone:US⟧",
    "her SSN is ⟦ssn⟧, his is ⟦ssn⟧",
    "Sozialversicherungsnummer (USA): ⟦ssn⟧",
    "W-9 received. TIN (SSN): ⟦ssn:plain⟧",
    "| Field | Value |\n|---|---|\n| Name | ⟦name⟧ |\n| SSN | ⟦ssn⟧ |",
    "patient ssn: \"⟦ssn⟧\"",
    "ssn:⟦ssn⟧",
    "SSN ⟦ssn⟧ — please shred after use.",

    # ============================== ip_address ==============================
    "⟦ipv4⟧ - - [⟦clf_ts⟧] \"GET /api/v1/users HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0\"",
    "Blocked ⟦ip⟧ after 20 failed SSH attempts",
    "ssh ubuntu@⟦ipv4⟧",
    "X-Forwarded-For: ⟦ip⟧, ⟦ipv4⟧",
    "server {\n    listen ⟦ipv4⟧:443 ssl;\n    server_name api.⟦domain⟧;\n}",
    "curl -6 http://[⟦ipv6⟧]:8080/health",
    "Our egress IPs are ⟦ipv4⟧ and ⟦ipv4⟧; please allowlist them.",
    '{"event":"login","ip":"⟦ip⟧","ua":"Mozilla/5.0 (Macintosh)"}',
    "Die Server-IP lautet ⟦ipv4⟧.",
    "IPアドレス：⟦ip⟧",
    "my ipv6 is ⟦ipv6⟧ lol",
    "AAAA record → ⟦ipv6⟧",
    "ping ⟦ipv4⟧",
    "$ dig +short api.⟦domain⟧\n⟦ipv4⟧\n⟦ipv4⟧",
    "Failed password for invalid user admin from ⟦ipv4⟧ port ⟦port⟧ ssh2",
    "(⟦ipv4⟧)",
    "⟦ip⟧",
    "client_ip=⟦ip⟧ method=POST path=/login status=401",
    "Accepted publickey for deploy from ⟦ipv6⟧ port ⟦port⟧ ssh2",
    "DNS: ⟦ipv4⟧, ⟦ipv6⟧",
    "inet6 ⟦ipv6⟧/64 scope global dynamic",
    "La IP del atacante fue ⟦ipv4⟧",
    "IP-адрес клиента: ⟦ip⟧",
    "Whitelist: [\"⟦ipv4⟧\", \"⟦ipv4⟧\", \"⟦ipv6⟧\"]",
    "Host ⟦ipv4⟧:22 is unreachable",
    "upstream backend {\n  server ⟦ipv4⟧:8080;\n  server [⟦ipv6⟧]:8080;\n}",
    "remote_addr: ⟦ip⟧",
    "Visitors from ⟦ipv4⟧ spiked at ⟦ts⟧",
    "traceroute hop 7: ⟦ipv4⟧  12.4 ms",

    # ============================== cloud_access_key ==============================
    "[default]\naws_access_key_id = ⟦awsid:akia⟧\naws_secret_access_key = ⟦awssecret⟧\nregion = ⟦region⟧",
    "export AWS_ACCESS_KEY_ID=⟦awsid⟧\nexport AWS_SECRET_ACCESS_KEY=⟦awssecret⟧",
    's3 = boto3.client("s3", aws_access_key_id="⟦awsid:akia⟧", aws_secret_access_key="⟦awssecret⟧")',
    "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records. (key: ⟦awsid⟧)",
    "<script src=\"https://maps.googleapis.com/maps/api/js?key=⟦gcpkey⟧&callback=initMap\" async defer></script>",
    "GOOGLE_API_KEY=⟦gcpkey⟧",
    "From the AWS docs (example only): ⟦awsid:example⟧",
    "is ⟦cloudkey⟧ still active? I think I leaked it in a commit",
    'provider "aws" {\n  region     = "⟦region⟧"\n  access_key = "⟦awsid:akia⟧"\n  secret_key = "⟦awssecret⟧"\n}',
    '{"Credentials": {"AccessKeyId": "⟦awsid:asia⟧", "SecretAccessKey": "⟦awssecret⟧", "Expiration": "⟦ts⟧"}}',
    "const firebaseConfig = {\n  apiKey: \"⟦gcpkey⟧\",\n  authDomain: \"⟦proj⟧.firebaseapp.com\",\n  projectId: \"⟦proj⟧\"\n};",
    "AWS-Zugangsschlüssel: ⟦awsid⟧",
    "Clé d'accès AWS : ⟦awsid⟧",
    "curl \"https://www.googleapis.com/youtube/v3/search?part=snippet&q=cats&key=⟦gcpkey⟧\"",
    "⟦awsid⟧",
    "Found in CloudTrail: accessKeyId ⟦awsid⟧ used from an unknown location",
    "AccessKeyId,SecretAccessKey\n⟦awsid:akia⟧,⟦awssecret⟧",
    "key id=⟦awsid⟧ (rotated yesterday?)",
    "GCP API key: ⟦gcpkey⟧ — restrict it to the Maps API",
    "aws configure\nAWS Access Key ID [None]: ⟦awsid:akia⟧\nAWS Secret Access Key [None]: ⟦awssecret⟧\nDefault region name [None]: ⟦region⟧",
    "アクセスキーID：⟦awsid⟧",
    "- name: Configure AWS\n  env:\n    AWS_ACCESS_KEY_ID: ⟦awsid:akia⟧",
    "maps_api_key: \"⟦gcpkey⟧\"",

    # ============================== source_host_token ==============================
    "git clone https://⟦srctoken:ghp⟧@github.com/⟦org⟧/⟦repo⟧.git",
    "export GITHUB_TOKEN=⟦srctoken:gh⟧",
    "curl -H \"Authorization: token ⟦srctoken:ghp⟧\" https://api.github.com/user/repos",
    "curl --header \"PRIVATE-TOKEN: ⟦srctoken:gl⟧\" \"https://gitlab.com/api/v4/projects\"",
    "- name: Checkout\n  uses: actions/checkout@v4\n  with:\n    token: ⟦srctoken:gh⟧",
    "I accidentally pushed ⟦srctoken⟧ to a public repo, how do I revoke it?",
    "echo ⟦srctoken:ghp⟧ | gh auth login --with-token",
    "machine github.com\n  login ⟦user⟧\n  password ⟦srctoken:ghp⟧",
    '{"token": "⟦srctoken:ghs⟧", "expires_at": "⟦ts⟧", "permissions": {"contents": "read"}}',
    "variables:\n  GL_TOKEN: \"⟦srctoken:gl⟧\"",
    "GitHub-Token abgelaufen? Neuer Token: ⟦srctoken:gh⟧",
    "fine-grained PAT: ⟦srctoken:pat⟧",
    "token ⟦srctoken:gh⟧ has repo, workflow scopes",
    "⟦srctoken⟧",
    "Authorization: Bearer ⟦srctoken:gho⟧",
    "GH_TOKEN=⟦srctoken:gh⟧ gh pr list --repo ⟦org⟧/⟦repo⟧",
    "请帮我看看这个 token 是否有效：⟦srctoken⟧",
    "[credential]\n\thelper = store\n# ~/.git-credentials\nhttps://⟦user⟧:⟦srctoken:ghp⟧@github.com",
    "Renovate config: {\"hostRules\": [{\"matchHost\": \"gitlab.com\", \"token\": \"⟦srctoken:gl⟧\"}]}",
    "octokit = Octokit(auth='⟦srctoken:ghp⟧')",
    "token GitHub (à révoquer) : ⟦srctoken:gh⟧",

    # ============================== chat_token ==============================
    "SLACK_BOT_TOKEN=⟦chattoken:xoxb⟧\nSLACK_APP_TOKEN=⟦chattoken:xapp⟧\nSLACK_SIGNING_SECRET=⟦secret:hex32⟧",
    'client = WebClient(token="⟦chattoken:xoxb⟧")',
    "curl -X POST -H 'Authorization: Bearer ⟦chattoken:slack⟧' -H 'Content-type: application/json' --data '{\"channel\":\"C0⟦upper:8⟧\",\"text\":\"deploy done\"}' https://slack.com/api/chat.postMessage",
    'bot.run("⟦chattoken:discord⟧")',
    "DISCORD_TOKEN=⟦chattoken:discord⟧",
    "https://api.telegram.org/bot⟦chattoken:telegram⟧/sendMessage?chat_id=⟦num⟧&text=hi",
    'TELEGRAM_BOT_TOKEN: "⟦chattoken:telegram⟧"',
    "BotFather gave me this: ⟦chattoken:telegram⟧ — keep it safe",
    "Done! Congratulations on your new bot. Use this token to access the HTTP API:\n⟦chattoken:telegram⟧\nKeep your token secure and store it safely.",
    "xoxp token for the migration script: ⟦chattoken:xoxp⟧",
    '{"ok": true, "access_token": "⟦chattoken:xoxb⟧", "token_type": "bot", "scope": "chat:write,channels:read", "bot_user_id": "U0⟦upper:8⟧"}',
    "Slack-Token für den Bot: ⟦chattoken:xoxb⟧",
    "⟦chattoken⟧",
    "const client = new Client({ intents: [GatewayIntentBits.Guilds] });\nclient.login('⟦chattoken:discord⟧');",
    "token: ⟦chattoken:xoxb⟧  # slack notifier",
    "app = App(token=\"⟦chattoken:xoxb⟧\", signing_secret=\"⟦secret:hex32⟧\")",
    "SocketModeHandler(app, \"⟦chattoken:xapp⟧\").start()",
    "bot = telebot.TeleBot(\"⟦chattoken:telegram⟧\")",
    "токен бота: ⟦chattoken:telegram⟧",
    "Discordのボットトークン：⟦chattoken:discord⟧",
    "[slack]\ntoken = \"⟦chattoken:slack⟧\"\nchannel = \"#alerts\"",
    "Leaked in #general: ⟦chattoken⟧ (revoked?)",

    # ============================== model_api_key ==============================
    "OPENAI_API_KEY=⟦modelkey:openai⟧",
    'client = OpenAI(api_key="⟦modelkey:openai⟧")',
    "curl https://api.openai.com/v1/chat/completions \\\n  -H \"Content-Type: application/json\" \\\n  -H \"Authorization: Bearer ⟦modelkey:openai⟧\" \\\n  -d '{\"model\": \"gpt-4o\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}'",
    "curl https://api.anthropic.com/v1/messages \\\n  -H \"x-api-key: ⟦modelkey:anthropic⟧\" \\\n  -H \"anthropic-version: 2023-06-01\" \\\n  -H \"content-type: application/json\" \\\n  -d '{\"model\": \"claude-3-5-sonnet-latest\", \"max_tokens\": 1024, \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'",
    "ANTHROPIC_API_KEY=⟦modelkey:anthropic⟧",
    "huggingface-cli login --token ⟦modelkey:hf⟧",
    "HF_TOKEN=⟦modelkey:hf⟧",
    'from huggingface_hub import login\nlogin(token="⟦modelkey:hf⟧")',
    "why does ⟦modelkey⟧ return 401 invalid_api_key?",
    "GROQ_API_KEY=⟦modelkey:groq⟧",
    "Mein OpenAI-Schlüssel: ⟦modelkey:openai⟧ – funktioniert nicht mehr",
    "APIキー: ⟦modelkey⟧",
    ".env\n```\nOPENAI_API_KEY=⟦modelkey:openai⟧\nANTHROPIC_API_KEY=⟦modelkey:anthropic⟧\n```",
    "REPLICATE_API_TOKEN=⟦modelkey:replicate⟧",
    'llm = ChatOpenAI(model="gpt-4o-mini", openai_api_key="⟦modelkey:openai⟧", temperature=0)',
    "export PPLX_API_KEY=⟦modelkey:pplx⟧",
    "⟦modelkey⟧",
    "anthropic.Anthropic(api_key='⟦modelkey:anthropic⟧')",
    "{\"mcpServers\": {\"search\": {\"command\": \"npx\", \"env\": {\"OPENAI_API_KEY\": \"⟦modelkey:openai⟧\"}}}}",
    "XAI_API_KEY=⟦modelkey:xai⟧",
    "Clé API (ne pas partager) : ⟦modelkey⟧",
    "use this one instead → ⟦modelkey:anthropic⟧",
    "openai.api_key = \"⟦modelkey:openai⟧\"",
    "headers = {\"Authorization\": f\"Bearer ⟦modelkey:hf⟧\"}",
    "`⟦modelkey⟧`",

    # ============================== jwt ==============================
    "Authorization: Bearer ⟦jwt⟧",
    "curl -H \"Authorization: Bearer ⟦jwt⟧\" https://api.⟦domain⟧/v2/me",
    "Set-Cookie: session=⟦jwt⟧; Path=/; HttpOnly; Secure; SameSite=Lax",
    '{"access_token": "⟦jwt⟧", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "⟦secret:urlsafe⟧"}',
    "can someone decode this? ⟦jwt⟧",
    "localStorage.setItem('token', '⟦jwt⟧');",
    "https://app.⟦domain⟧/callback#access_token=⟦jwt⟧&token_type=bearer&expires_in=3600",
    "JWT aus dem Log: ⟦jwt⟧",
    "The jwt.io sample token ⟦jwt:example⟧ decodes to John Doe.",
    "⟦jwt⟧",
    '{"headers": {"Authorization": "Bearer ⟦jwt⟧", "Accept": "application/json"}}',
    "⟦ts⟧ DEBUG auth: verifying token=⟦jwt⟧ kid mismatch",
    "id_token: ⟦jwt⟧",
    "wscat -c 'wss://stream.⟦domain⟧/v1?token=⟦jwt⟧'",
    "Cookie: _ga=GA1.2.⟦digits:9⟧.⟦digits:10⟧; access_token=⟦jwt⟧",
    "トークン：⟦jwt⟧",
    "grpcurl -H 'authorization: Bearer ⟦jwt⟧' api.⟦domain⟧:443 list",
    "token expired? ⟦jwt⟧ (got 401 at ⟦ts⟧)",
    "\"idToken\":\"⟦jwt⟧\"",
    "> ⟦jwt⟧\nthat's the bearer from the HAR file",

    # ============================== private_key ==============================
    "Here's the key I'm using, ssh says 'invalid format':\n\n⟦pem:openssh⟧",
    "```\n⟦pem⟧\n```",
    "$ cat ~/.ssh/id_rsa\n⟦pem:rsa⟧",
    '{\n  "type": "service_account",\n  "project_id": "⟦proj⟧",\n  "private_key": "⟦pemjson:pkcs8⟧\\n",\n  "client_email": "⟦email:sa⟧",\n  "token_uri": "https://oauth2.googleapis.com/token"\n}',
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: tls-cert\ntype: kubernetes.io/tls\nstringData:\n  tls.key: |\n⟦pemindent:4⟧",
    "PRIVATE_KEY=\"⟦pemjson:ec⟧\"",
    "⟦pem:pgp⟧",
    "Clé privée du serveur :\n⟦pem⟧",
    "deploy_key: |\n⟦pemindent:2⟧\nknown_hosts: github.com",
    "ssh-agent rejected this one:\n⟦pem:openssh⟧\nany idea?",
    "⟦pem:enc⟧",
    "-- server.key --\n⟦pem:rsa_enc⟧",
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 gave me\n⟦pem:pkcs8⟧",
    "秘密鍵はこちら：\n⟦pem⟧",
    "key.pem:\n⟦pem:ec⟧\n\ncert.pem is attached separately",
    "⟦pem⟧",
    "JWT_PRIVATE_KEY=\"⟦pemjson:rsa⟧\"",
    "Privater Schlüssel (bitte nicht weitergeben):\n\n⟦pem:openssh⟧",
    "<pre>⟦pem:dsa⟧</pre>",
    '{"tool":"vault.read","result":{"data":{"key":"⟦pemjson⟧"}}}',

    # ============================== connection_password ==============================
    "DATABASE_URL=⟦connurl:postgres⟧",
    "mongodb+srv://⟦user⟧:⟦connpw⟧@cluster0.⟦hex:5⟧.mongodb.net/?retryWrites=true&w=majority",
    "REDIS_URL=redis://:⟦connpw⟧@⟦host⟧:6379/0",
    'engine = create_engine("postgresql+psycopg2://⟦user⟧:⟦connpw⟧@⟦host⟧:5432/⟦dbname⟧")',
    "amqp://⟦user⟧:⟦connpw⟧@rabbitmq.⟦domain⟧:5672/%2F",
    "psql 'postgres://⟦user⟧:⟦connpw⟧@⟦host⟧/⟦dbname⟧?sslmode=require'",
    "ftp://⟦user⟧:⟦connpw⟧@ftp.⟦domain⟧/outgoing/",
    "Der Connection-String lautet mysql://⟦user⟧:⟦connpw⟧@⟦host⟧:3306/⟦dbname⟧",
    '{"db": {"url": "⟦connurl⟧", "pool": 10}}',
    "services:\n  api:\n    environment:\n      - DATABASE_URL=⟦connurl:postgresql⟧",
    "pip install --index-url https://⟦user⟧:⟦connpw⟧@nexus.⟦domain⟧/repository/pypi/simple ⟦repo⟧",
    "Error: connect ECONNREFUSED while connecting to ⟦connurl⟧",
    "CELERY_BROKER_URL=redis://default:⟦connpw⟧@⟦host⟧:6380/1",
    "postgres://⟦user⟧:⟦connpw⟧@⟦ipv4⟧:5432/⟦dbname⟧",
    "⟦connurl⟧",
    "spring:\n  data:\n    mongodb:\n      uri: ⟦connurl:mongodb⟧",
    "La cadena de conexión es ⟦connurl⟧",
    "sqlalchemy.url = ⟦connurl:mysql+pymysql⟧",
    "smtp_url: \"smtp://apikey:⟦connpw⟧@smtp.⟦domain⟧:587\"",
    "jdbc:mysql://⟦user⟧:⟦connpw⟧@⟦host⟧:3306/⟦dbname⟧?useSSL=true",
    "接続文字列: ⟦connurl⟧",
    "`⟦connurl:postgres⟧`",
    "Tool output (env.list): {\"DATABASE_URL\": \"⟦connurl:postgres⟧\", \"NODE_ENV\": \"production\"}",
    "[broker]\nurl = ⟦connurl:amqps⟧",

    # ============================== assigned_secret ==============================
    'password = "⟦secret⟧"',
    "DB_PASSWORD=⟦secret:plain⟧",
    "API_KEY: ⟦secret:plain⟧",
    '"client_secret": "⟦secret⟧"',
    "SECRET_KEY = '⟦secret:django⟧'",
    "database:\n  host: ⟦host⟧\n  user: ⟦user⟧\n  password: ⟦secret:plain⟧",
    "auth:\n  client_id: ⟦uuid⟧\n  client_secret: '⟦secret⟧'",
    '{"web": {"client_id": "⟦digits:12⟧-⟦hex:32⟧.apps.googleusercontent.com", "project_id": "⟦proj⟧", "client_secret": "⟦secret:gocspx⟧", "redirect_uris": ["http://localhost:8080/callback"]}}',
    "[api]\ntoken = \"⟦secret⟧\"\ntimeout = 30",
    "[mysql]\nuser = ⟦user⟧\npassword = ⟦secret:plain⟧",
    "X-API-Key: ⟦secret:hex32⟧",
    "curl -H \"X-Api-Key: ⟦secret:plain⟧\" https://api.⟦domain⟧/v1/orders",
    "'password' => '⟦secret⟧',",
    "const config = { apiKey: '⟦secret:plain⟧', apiSecret: '⟦secret⟧' };",
    'cfg := Config{APIKey: "⟦secret:plain⟧", Endpoint: "https://api.⟦domain⟧"}',
    "docker run -e POSTGRES_PASSWORD=⟦secret:plain⟧ -d postgres:16",
    "Server=tcp:⟦dbname⟧-sql.database.windows.net,1433;Database=⟦dbname⟧;User ID=⟦user⟧;Password=⟦secret:plain⟧;Encrypt=True;",
    "env:\n  - name: STRIPE_WEBHOOK_SECRET\n    value: \"⟦secret:whsec⟧\"",
    "aws_secret_access_key = ⟦awssecret⟧",
    "JWT_SECRET=⟦secret:hex64⟧",
    "ENCRYPTION_KEY=⟦secret:b64_32⟧",
    "Passwort: ⟦secret⟧",
    "webhook_secret: ⟦secret:plain⟧",
    "SENDGRID_API_KEY=⟦secret:sendgrid⟧",
    '{"tool": "vault.read", "result": {"path": "secret/data/prod/db", "data": {"username": "⟦user⟧", "password": "⟦secret⟧"}}}',
    "set PGPASSWORD=⟦secret:plain⟧ && psql -h ⟦host⟧ -U ⟦user⟧",
    "kubectl create secret generic db-creds --from-literal=username=⟦user⟧ --from-literal=password=⟦secret:plain⟧",
    "https://api.⟦domain⟧/v1/data?api_key=⟦secret:hex32⟧&format=json",
    "spring.datasource.url=jdbc:postgresql://⟦host⟧:5432/⟦dbname⟧\nspring.datasource.username=⟦user⟧\nspring.datasource.password=⟦secret:plain⟧",
    "mot de passe = \"⟦secret⟧\"",
    "contraseña: ⟦secret:plain⟧",
    "パスワード: ⟦secret⟧",
    "export MAILGUN_API_KEY=\"⟦secret:hex32⟧\"",
    "SESSION_SECRET=⟦secret:b64_32⟧\nCOOKIE_SECRET=⟦secret:hex32⟧",
    "secrets:\n  datadog_api_key: ⟦secret:hex32⟧\n  sentry_auth_token: ⟦secret:hex64⟧",
    "<add key=\"ApiSecret\" value=\"⟦secret⟧\" />",
    "{\"apiKey\":\"⟦secret:plain⟧\",\"region\":\"eu\"}",
    "client_secret=⟦secret:urlsafe⟧&grant_type=client_credentials&client_id=⟦uuid⟧",
    "ADMIN_PASSWORD='⟦secret:strong⟧'",
    "admin password = ⟦secret:strong⟧",

    # ============================== value at the very start ==============================
    "⟦email⟧: bounced (550 5.1.1 mailbox unavailable)",
    "⟦email⟧ — that's my personal one, use it for the invite",
    "⟦phone⟧ - call me back when you land",
    "⟦phone:US⟧ is the new front desk number.",
    "⟦card⟧ exp 04/27",
    "⟦card⟧, that's the corporate Amex. Don't save it.",
    "⟦iban⟧ (Sparkasse), bitte bis Freitag überweisen",
    "⟦iban⟧ is where the refund should go",
    "⟦ssn⟧ is my SSN, do you need anything else?",
    "⟦ssn⟧\n⟦name⟧\n⟦isodate⟧",
    "⟦ip⟧ keeps hitting /wp-login.php every few seconds",
    "⟦ipv6⟧ is the new AAAA target",
    "⟦awsid⟧ / ⟦awssecret⟧ (ci user)",
    "⟦gcpkey⟧ — Maps key for the staging site",
    "⟦srctoken:gh⟧ <- new token, old one revoked",
    "⟦srctoken:gl⟧ is the project access token for CI",
    "⟦chattoken⟧ is the bot token",
    "⟦chattoken:telegram⟧ — бот для уведомлений",
    "⟦modelkey⟧ is my key, why do I get 429s?",
    "⟦modelkey:anthropic⟧\n(key for the eval harness)",
    "⟦jwt⟧ <- decode pls, exp looks wrong",
    "⟦jwt⟧\n\nsame token fails on staging",
    "⟦pem:ec⟧\n^ server key, rotate after the demo",
    "⟦pem:openssh⟧\nthis is the bastion key",

    # ============================== mixed multi-category ==============================
    "# .env.production\nNODE_ENV=production\nDATABASE_URL=⟦connurl:postgres⟧\nREDIS_URL=redis://:⟦connpw⟧@⟦host⟧:6379\nOPENAI_API_KEY=⟦modelkey:openai⟧\nSLACK_BOT_TOKEN=⟦chattoken:xoxb⟧\nGITHUB_TOKEN=⟦srctoken:gh⟧\nSESSION_SECRET=⟦secret:hex64⟧\nSUPPORT_EMAIL=⟦email⟧",
    'Tool result (crm.get_contact):\n{"name": "⟦name⟧", "email": "⟦email⟧", "phone": "⟦phone⟧", "last_ip": "⟦ip⟧", "iban": "⟦iban:compact⟧"}',
    "Hi team — new hire paperwork for ⟦name⟧:\n• Email: ⟦email⟧\n• Phone: ⟦phone:US⟧\n• SSN: ⟦ssn⟧\n• Direct deposit IBAN: ⟦iban⟧\nPlease keep this confidential.",
    "⟦ts⟧ WARN [⟦svc⟧] suspicious checkout user=⟦email⟧ ip=⟦ipv4⟧ card=⟦card:plain⟧",
    "```yaml\naws:\n  access_key_id: ⟦awsid:akia⟧\n  secret_access_key: ⟦awssecret⟧\nslack:\n  token: ⟦chattoken:xoxb⟧\nopenai:\n  api_key: ⟦modelkey:openai⟧\n```",
    "Order confirmation ⟦order⟧\nShip to: ⟦name⟧, ⟦city⟧\nContact: ⟦email⟧ / ⟦phone⟧\nPaid with card ⟦card⟧",
    "Estimado ⟦first⟧: su pago a ⟦iban:ES⟧ fue recibido. Para dudas llame al ⟦phone:ES⟧ o escriba a ⟦email⟧.",
    "Sehr geehrte Frau ⟦last⟧,\nbitte überweisen Sie ⟦price⟧ auf ⟦iban:DE⟧. Rückfragen gerne an ⟦email⟧ oder ⟦phone:DE⟧.",
    "curl -X POST https://api.⟦domain⟧/v1/users -H \"Authorization: Bearer ⟦jwt⟧\" -d '{\"email\":\"⟦email⟧\",\"phone\":\"⟦phone:e164⟧\"}'",
    "| service | credential |\n|---|---|\n| github | ⟦srctoken:gh⟧ |\n| slack | ⟦chattoken⟧ |\n| openai | ⟦modelkey⟧ |\n| aws | ⟦awsid⟧ |",
    "terraform.tfvars:\ndb_password = \"⟦secret⟧\"\ngoogle_api_key = \"⟦gcpkey⟧\"\nadmin_email = \"⟦email⟧\"",
    "[⟦ts⟧] login ok for ⟦email⟧ from ⟦ipv6⟧ (session ⟦jwt⟧)",
    "Dear ⟦first⟧, your card ⟦card⟧ was charged ⟦price⟧. Questions? Call ⟦phone⟧.",
    "config.json:\n{\n  \"database\": \"⟦connurl:mysql⟧\",\n  \"hf_token\": \"⟦modelkey:hf⟧\",\n  \"admin\": \"⟦email⟧\"\n}",
    "患者情報：氏名 ⟦name⟧、電話 ⟦phone:JP⟧、メール ⟦email⟧",
    "SSN ⟦ssn⟧ and card ⟦card:visa⟧ were both in the support ticket from ⟦email⟧ — purge it.",
    "```bash\nexport AWS_ACCESS_KEY_ID=⟦awsid⟧\nexport AWS_SECRET_ACCESS_KEY=⟦awssecret⟧\nexport GITLAB_TOKEN=⟦srctoken:gl⟧\n```",
    "Kundendaten: ⟦name⟧, ⟦email⟧, Tel. ⟦phone:DE⟧, IBAN ⟦iban:DE⟧",
    "ssh-keygen output saved. Server ⟦ipv4⟧ now accepts this key:\n⟦pem:openssh⟧",
    "Slack alert from ⟦ip⟧: user ⟦email⟧ pasted ⟦modelkey⟧ into #random",
]

# --------------------------------------------------------------------------------------
# Negative templates (no labelled placeholders allowed).
# --------------------------------------------------------------------------------------
NEG_TEMPLATES = [
    "Your order ⟦neg:order⟧ has shipped! ⟦neg:tracking⟧. Total: ⟦price⟧. Expected delivery: ⟦date⟧.",
    "Invoice ⟦neg:invoice⟧\nDate: ⟦date⟧\nAmount due: ⟦price⟧\nPayment terms: 30 days net",
    "# .env.example\nDATABASE_URL=postgres://user:password@localhost:5432/app\nOPENAI_API_KEY=<your key>\nSLACK_BOT_TOKEN=xoxb-your-token\nSECRET_KEY=changeme\nAWS_ACCESS_KEY_ID=\nAWS_SECRET_ACCESS_KEY=",
    "password=changeme",
    "API_KEY=<your key>",
    "export GITHUB_TOKEN=${SECRET}",
    "db:\n  host: ⟦host⟧\n  user: ⟦user⟧\n  password: ${DB_PASSWORD}",
    "```python\nimport os\n\nOPENAI_API_KEY = os.environ[\"OPENAI_API_KEY\"]\nclient = OpenAI(api_key=OPENAI_API_KEY)\n```",
    "To authenticate, set `ANTHROPIC_API_KEY` in your environment. Keys look like `sk-ant-...`; never commit them.",
    "commit ⟦sha⟧\nMerge: ⟦shortsha⟧ ⟦shortsha⟧\nDate:   ⟦date⟧\n\n    bump deps (⟦neg:version⟧)",
    "$ git log --oneline -3\n⟦shortsha⟧ fix flaky test\n⟦shortsha⟧ chore: bump ⟦neg:version⟧\n⟦shortsha⟧ feat: add retries",
    "Released ⟦neg:version⟧ on ⟦date⟧. Changelog: https://github.com/⟦org⟧/⟦repo⟧/releases",
    '{"id": "⟦uuid⟧", "status": "shipped", "order": "⟦neg:order⟧", "total": "⟦price⟧", "created_at": "⟦ts⟧"}',
    "⟦ts⟧ INFO [⟦svc⟧] request_id=⟦uuid⟧ latency=⟦num⟧ms status=200",
    "⟦ts⟧ ERROR [⟦svc⟧] timeout after 30000ms (attempt 3/3) trace_id=⟦hex:32⟧",
    ":root {\n  --brand: ⟦neg:color⟧;\n  --accent: ⟦neg:color⟧;\n}\n@media (max-width: 600px) { .nav { display: none; } }",
    "Download size: ⟦neg:size⟧ (checksum ⟦neg:hash⟧)",
    "The certificate uses ⟦neg:oid⟧ as its signature algorithm.",
    "Card ⟦neg:luhnfail⟧ failed Luhn validation — please re-enter.",
    "IBAN ⟦neg:badiban⟧ rejected: check digits do not match.",
    "Book: \"Designing Data-Intensive Applications\", ⟦neg:isbn⟧, ⟦price⟧",
    "Meeting moved to ⟦date⟧ at 14:30 CET, room 4.12.",
    "Please use a password manager; never share passwords over chat. Minimum length is 12 characters.",
    "PR #⟦num⟧ bumps lodash from 4.17.20 to 4.17.21 (sha ⟦shortsha⟧).",
    "```yaml\nenv:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n        name: db-secret\n        key: password\n```",
    "jobs:\n  deploy:\n    steps:\n      - uses: actions/checkout@v4\n      - run: ./deploy.sh\n        env:\n          GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}\n          SLACK_WEBHOOK: ${{ secrets.SLACK_WEBHOOK }}",
    "SELECT id, created_at FROM orders WHERE total > 100 AND created_at > '⟦isodate⟧' LIMIT 50;",
    "Traceback (most recent call last):\n  File \"/app/⟦svc⟧/handlers.py\", line ⟦num⟧, in handle\n    raise KeyError('api_key')\nKeyError: 'api_key'",
    "The server responded with 401 Unauthorized: missing or invalid API key.",
    "Set `password` to the value from 1Password (vault: Infra, item: prod-db).",
    "\"dependencies\": {\n  \"react\": \"^18.2.0\",\n  \"typescript\": \"~5.4.5\",\n  \"@types/node\": \"20.12.7\"\n}",
    "\"resolved\": \"https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz\",\n\"integrity\": \"sha512-⟦b64:64⟧\"",
    "Docker image: ghcr.io/⟦org⟧/⟦repo⟧@sha256:⟦hex:64⟧",
    "Running on Python 3.11.7, pip 24.0, OpenSSL 3.0.13 30 Jan 2024.",
    "Bestellnummer ⟦neg:order⟧ — Lieferung voraussichtlich am ⟦date⟧. Betrag: ⟦price⟧.",
    "Commande ⟦neg:order⟧ expédiée le ⟦date⟧. Suivi : ⟦neg:tracking⟧.",
    "Pedido ⟦neg:order⟧ confirmado. Total ⟦price⟧ (IVA incluido).",
    "ご注文番号 ⟦neg:order⟧ の商品は ⟦date⟧ に発送されました。",
    "订单号 ⟦neg:order⟧ 已发货，金额 ⟦price⟧。",
    "Заказ ⟦neg:order⟧ оплачен, сумма ⟦price⟧.",
    "The OID for sha256WithRSAEncryption is 1.2.840.113549.1.1.11 and for prime256v1 it's 1.2.840.10045.3.1.7.",
    "Windows build 10.0.22631.3447 — KB5036893 installed on ⟦date⟧.",
    "Coordinates: 48.8584° N, 2.2945° E (elevation 35 m).",
    "Heap usage 1.2 GB / 4 GB; GC pause 38 ms; uptime 12:04:55.",
    "mac address ⟦neg:iplike⟧ belongs to the printer on floor 3",
    "std::unordered_map<std::string, int> counts; // C++17",
    "Our API keys are prefixed with `live_` or `test_`. You can create one under Settings → API.",
    "AWS access key IDs are 20 characters and start with AKIA; secret keys are 40 characters. Never paste them here.",
    "`GITHUB_TOKEN` is injected automatically in Actions — you don't need a PAT for this.",
    "Example (do not use real values):\n```\nexport AWS_ACCESS_KEY_ID=<access-key-id>\nexport AWS_SECRET_ACCESS_KEY=<secret-access-key>\n```",
    "connection string format: postgresql://USER:PASSWORD@HOST:PORT/DBNAME",
    "mongodb+srv://<username>:<password>@cluster0.example.mongodb.net/?retryWrites=true",
    "redis://localhost:6379/0",
    "-----BEGIN CERTIFICATE-----\n(certificate body omitted)\n-----END CERTIFICATE-----",
    "⟦neg:pubkey⟧",
    "Add this public key to authorized_keys:\n⟦neg:pubkey⟧",
    "ISBN ⟦neg:isbn⟧ · 432 pages · ⟦price⟧",
    "Build #⟦num⟧ finished in 4m 12s (commit ⟦shortsha⟧, ⟦neg:version⟧).",
    "Temperature: 21.5°C, humidity 48%, pressure 1013.2 hPa at ⟦ts⟧",
    "Release 2.4.1 (2024-05-14)\n- Fixed crash on startup (#1234)\n- Bumped minimum iOS to 15.0",
    "Price list:\n- Basic: ⟦price⟧/mo\n- Pro: ⟦price⟧/mo\n- Enterprise: contact sales",
    "Your verification code is expired. Request a new one from the login page.",
    "Reminder: the password policy requires 14+ characters and rotation every 90 days.",
    "password: \"********\"",
    "\"password\": null,\n\"api_key\": \"\",\n\"token\": \"<redacted>\"",
    "SECRET_KEY=your-secret-key-here\nDEBUG=True",
    "api_key = \"YOUR_API_KEY\"  # replace with your key",
    "token: {{ .Values.slack.token }}",
    "STRIPE_SECRET_KEY=sk_test_...  (get it from the dashboard)",
    "aws_secret_access_key = <YOUR_SECRET_KEY>",
    "Set OPENAI_API_KEY=sk-... in your shell profile, then restart the terminal.",
    "PGPASSWORD=$(cat /run/secrets/pg_password) psql -h ⟦host⟧ -U ⟦user⟧",
    "client_secret: ${CLIENT_SECRET}",
    "password=%(db_password)s",
    "Authorization: Bearer <token>",
    "curl -H \"Authorization: Bearer $API_TOKEN\" https://api.⟦domain⟧/v1/status",
    "curl -u \"$USER:$PASS\" https://registry.⟦domain⟧/v2/_catalog",
    "Trace: span ⟦hex:16⟧ parent ⟦hex:16⟧ duration 12.5ms",
    "Resource ⟦neg:arn⟧ was tagged owner=platform.",
    "Looked up ⟦neg:arn⟧ for session ci-⟦num⟧.",
    "Color palette: ⟦neg:color⟧, ⟦neg:color⟧, ⟦neg:color⟧",
    "The file is ⟦neg:size⟧ and the checksum is ⟦neg:hash⟧.",
    "UUID collision? ⟦uuid⟧ vs ⟦uuid⟧",
    "Test data uses invalid SSNs like ⟦neg:badssn⟧ so it can never match a real person.",
    "Kontonummer ⟦neg:badiban⟧ ist ungültig (Prüfziffer falsch).",
    "Rejected: ⟦neg:lenIban⟧ has the wrong length for its country.",
    "⟦neg:luhnnonnet⟧ is our internal member number, not a card.",
    "Tracking numbers: ⟦neg:tracking⟧, ⟦neg:tracking⟧",
    "v1.2.3 → v1.3.0-rc.1+build.45 (semver minor bump)",
    "Elapsed: 00:03:27.514, throughput 1,204 req/s, p95 87 ms",
    "Total: ⟦price⟧ (incl. VAT 19%) — due ⟦date⟧",
    "See RFC 7519 section 4.1.4 for the \"exp\" claim.",
    "Markdown tip: use `@mention` to notify someone and `#123` to link an issue.",
    "@⟦first⟧ could you review PR #⟦num⟧ when you get a chance?",
    "The decorator @lru_cache(maxsize=128) speeds this up a lot.",
    "Retina assets: logo@2x.png, logo@3x.png",
    "npm install @angular/core@17.3.0 @nestjs/common@10.3.7",
    "Uptime 99.95% over the last 30 days; 3 incidents, MTTR 42 min.",
    "Sprint 24.3 goals: finish billing v2, migrate CI, rotate secrets (tracked in ⟦neg:order⟧).",
    "Ticket ⟦neg:order⟧: customer can't log in after password reset. Asked them to clear cookies.",
    "Hola equipo, la versión ⟦neg:version⟧ ya está en producción desde el ⟦date⟧.",
    "Hallo zusammen, Build ⟦num⟧ ist grün. Nächster Release am ⟦date⟧.",
    "Salut, le ticket ⟦neg:order⟧ est résolu, merci !",
    "お疲れ様です。バージョン⟦neg:version⟧をリリースしました。",
    "大家好，⟦date⟧ 发布了 ⟦neg:version⟧ 版本。",
    "Коллеги, релиз ⟦neg:version⟧ запланирован на ⟦date⟧.",
    "مرحباً، تم شحن الطلب ⟦neg:order⟧ بتاريخ ⟦date⟧",
    "नमस्ते, आपका ऑर्डर ⟦neg:order⟧ भेज दिया गया है।",
    "⟦neg:prefixtalk⟧",
    "FAQ: Where do I find my API key? → Dashboard → Settings → API keys. We will never ask for it by email.",
    "-----BEGIN PUBLIC KEY-----\n(see attached public.pem)\n-----END PUBLIC KEY-----",
    "HTTP/1.1 200 OK\nContent-Type: application/json\nETag: \"⟦hex:32⟧\"\nX-Request-Id: ⟦uuid⟧\nCache-Control: max-age=300",
    "⟦neg:keyword⟧\n⟦neg:keyword⟧\n⟦neg:keyword⟧",
    "```ini\n[database]\nhost = ⟦host⟧\nport = 5432\nuser = ⟦user⟧\npassword =\n```",
    "password: \"\"  # set via env",
    "CHANGELOG: removed hard-coded credentials; all secrets now come from Vault (path secret/data/⟦svc⟧).",
    "Sorry, I can't share the token here — I'll DM it via 1Password.",
    "Hash of the release tarball: ⟦neg:hash⟧",
    "The SSH host key fingerprint is ⟦fp⟧.",
    "Lat/long ⟦latlon⟧, altitude 120 m",
    "Gift card balance: ⟦price⟧ (card serial ⟦neg:luhnnonnet⟧)",
    "Quote #Q-⟦num⟧ valid until ⟦date⟧: ⟦price⟧",
    "A typical phone format is +1 (XXX) XXX-XXXX; use E.164 when storing.",
    "Our support line is open 9:00–17:00 Monday to Friday.",
]

# Frames filled with random look-alike snippets
NEG_FRAMES = [
    "⟦neg⟧",
    "Hi ⟦first⟧, ⟦neg⟧. Let me know if anything else is needed.",
    "⟦ts⟧ INFO [⟦svc⟧] ⟦neg⟧",
    "⟦ts⟧ WARN [⟦svc⟧] ⟦neg⟧ (retrying)",
    "Quick question — what is ⟦neg⟧?",
    "Notes from today:\n- ⟦neg⟧\n- ⟦neg⟧\n- ⟦neg⟧",
    "| item | value |\n|---|---|\n| a | ⟦neg⟧ |\n| b | ⟦neg⟧ |",
    '{"note": "⟦neg:order⟧", "meta": {"version": "⟦neg:version⟧", "created": "⟦ts⟧"}}',
    "Danke! ⟦neg⟧",
    "⟦neg⟧\n⟦neg⟧",
    "Re: ticket ⟦neg:order⟧ — ⟦neg⟧",
    "FYI ⟦neg⟧ and ⟦neg⟧",
    "```\n⟦neg⟧\n```",
    "Merci pour votre retour : ⟦neg⟧.",
    "参考：⟦neg⟧",
    "Примечание: ⟦neg⟧",
    "(⟦neg⟧)",
    "> ⟦neg⟧\n\nAgreed.",
    "tool_result: {\"ok\": true, \"info\": \"⟦neg:keyword⟧\"}",
    "config:\n  ⟦neg:keyword⟧\n  ⟦neg:placeholder⟧",
    "⟦neg:placeholder⟧",
    "⟦neg:placeholder⟧\n⟦neg:placeholder⟧\n⟦neg:secretref⟧",
    "⟦neg:secretref⟧",
    "⟦neg:masked⟧",
    "Payment method on file: ⟦neg:masked⟧",
    "⟦neg:connlike⟧",
    "DATABASE_URL=⟦neg:connlike⟧",
    "⟦neg:emaillike⟧",
    "⟦neg:iplike⟧",
    "⟦neg:phonelike⟧",
    "⟦neg:luhnfail⟧",
    "⟦neg:badiban⟧",
    "⟦neg:date⟧ — ⟦neg:misc⟧",
    "Version check: ⟦neg:version⟧ / ⟦neg:version⟧",
    "⟦neg:datauri⟧",
    "⟦neg:hash⟧",
    "⟦neg:prefixtalk⟧ ⟦neg:masked⟧",
]


# --------------------------------------------------------------------------------------
# Independent audit: any well-defined pattern found in an unlabelled region is a bug.
# --------------------------------------------------------------------------------------
TLDS = {"com", "org", "net", "io", "de", "fr", "uk", "jp", "me", "ai", "xyz", "ru", "it", "br", "cn", "in",
        "es", "nl", "ch", "au", "ca", "dev", "app", "co", "edu", "gov", "info", "biz", "us", "eu", "se", "no",
        "dk", "fi", "pl", "pt", "kr", "tech", "cloud", "email", "fm", "cz", "beer", "company", "mx", "ie"}
RE_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+([A-Za-z]{2,})")
RE_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
RE_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){10,32}")
RE_SSN = re.compile(r"(?<!\d)(\d{3})([- ]?)(\d{2})\2(\d{4})(?!\d)")
RE_V4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
RE_V6 = re.compile(r"(?<![0-9A-Za-z:.])[0-9A-Fa-f:]{3,39}(?![0-9A-Za-z:])")
RE_SECRETS = [re.compile(p) for p in [
    r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z2-7]{16}(?![A-Z0-9])", r"AIza[\w-]{35}", r"gh[pousr]_[A-Za-z0-9]{36}",
    r"github_pat_\w{82}", r"glpat-[\w-]{20}", r"xox[bpaer]-\d", r"xapp-\d-", r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{30,}",
    r"hf_[A-Za-z]{34}", r"gsk_[A-Za-z0-9]{52}", r"r8_[A-Za-z0-9]{37}", r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]{10,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY[A-Z ]*-----\s*[A-Za-z0-9+/]{20}", r"\d{8,10}:AA[\w-]{33}",
    r"[MNO][A-Za-z\d]{23,25}\.[\w-]{6}\.[\w-]{27,38}", r"pplx-[A-Za-z0-9]{48}", r"xai-[A-Za-z0-9]{80}"]]
PHONE_AUDIT_REGIONS = ["US", "GB", "DE"]
RE_NANP = re.compile(r"1?[-. ]?\d{3}[-. ]\d{3}[-. ]\d{4}")


def audit(text, labels):
    spans = [(a, b) for _, a, b in labels]

    def covered(a, b):
        return any(s < b and a < e for s, e in spans)

    issues = []
    for m in RE_EMAIL.finditer(text):
        if m.group(1).lower() in TLDS and not covered(m.start(), m.end()):
            issues.append(("email", m.group()))
    for m in RE_CARD.finditer(text):
        d = re.sub(r"\D", "", m.group())
        for L in range(13, min(19, len(d)) + 1):
            for i in range(0, len(d) - L + 1):
                sub = d[i:i + L]
                if (i == 0 or i + L == len(d)) and luhn_ok(sub) and card_prefix_ok(sub) and not covered(m.start(), m.end()):
                    issues.append(("card", m.group()))
    for m in RE_IBAN.finditer(text):
        s = re.sub(r"[ -]", "", m.group()).upper()
        cc = s[:2]
        if cc in IBAN_SPECS:
            L = IBAN_SPECS[cc][0]
            if len(s) >= L and iban_valid(s[:L]) and not covered(m.start(), m.end()):
                issues.append(("iban", m.group()))
    for m in RE_SSN.finditer(text):
        if m.group(2) and ssn_valid(m.group()) and not covered(m.start(), m.end()):
            issues.append(("ssn", m.group()))
    for m in RE_V4.finditer(text):
        try:
            a = ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        if a.is_global and not covered(m.start(), m.end()):
            issues.append(("ipv4", m.group()))
    for m in RE_V6.finditer(text):
        if m.group().count(":") < 2:
            continue
        try:
            a = ipaddress.IPv6Address(m.group())
        except ValueError:
            continue
        if a.is_global and not covered(m.start(), m.end()):
            issues.append(("ipv6", m.group()))
    for r in RE_SECRETS:
        for m in r.finditer(text):
            if not covered(m.start(), m.end()):
                issues.append(("secret", m.group()[:40]))
    # phones: only flag hits that *look* like phone numbers (international prefix, parenthesised
    # area code or NANP 3-3-4 grouping). Digit strings inside dates / order numbers / ISBNs that
    # libphonenumber happens to accept in some region are intended negatives.
    for reg in PHONE_AUDIT_REGIONS:
        for m in pn.PhoneNumberMatcher(text, reg):
            raw = m.raw_string
            if covered(m.start, m.end):
                continue
            if raw.startswith(("+", "(")) or RE_NANP.fullmatch(raw):
                issues.append(("phone", raw))
    return issues


# --------------------------------------------------------------------------------------
# Document assembly
# --------------------------------------------------------------------------------------
audit_rejects = Counter()
SEEN_TEXTS = set()
audit_examples = defaultdict(list)


def decorate(segs, allow_wrap=True):
    """random chat-style prefix/suffix and look-alike distractors (kept sparse so that
    many documents still start/end with the sensitive value)."""
    if allow_wrap and rng.random() < 0.18:
        segs = [(None, pick(PREFIXES))] + segs
    if allow_wrap and rng.random() < 0.15:
        segs = segs + [(None, pick(SUFFIXES))]
    if rng.random() < 0.22:
        d = gen_neg()
        multiline = any("\n" in s for _, s in segs) or "\n" in d
        if rng.random() < 0.5:
            segs = [(None, d + ("\n\n" if multiline else pick([". ", "\n", " — ", "; "])))] + segs
        else:
            segs = segs + [(None, ("\n\n" if multiline else pick([". ", "\n", " — ", " | "])) + d)]
    return segs


def make_doc(tpl, positive=True):
    for attempt in range(60):
        segs = fill(tpl)
        segs = decorate(segs, allow_wrap=True)
        text, labels, pairs = build(segs)
        if positive:
            assert labels
        else:
            assert not labels
        if text in SEEN_TEXTS:
            audit_rejects["duplicate"] += 1
            continue
        issues = audit(text, labels)
        if not issues:
            SEEN_TEXTS.add(text)
            return text, labels, pairs
        for k, v in issues:
            audit_rejects[k] += 1
            if len(audit_examples[k]) < 8:
                audit_examples[k].append(v)
    return None


def main():
    docs = []
    pools = defaultdict(list)
    for i, tpl in enumerate(POS_TEMPLATES):
        cats = template_cats(tpl)
        assert cats, tpl
        for c in cats:
            pools[c].append(i)
    for c in CATEGORIES:
        assert len(pools[c]) >= 12, (c, len(pools[c]))
    for c in CATEGORIES:
        # prefer templates whose only labelled category is c (2/3), otherwise any template holding c
        own = [i for i in pools[c] if template_cats(POS_TEMPLATES[i]) == {c}]
        other = [i for i in pools[c] if i not in own]
        for k in range(N_POS_PER_CAT):
            if other and (not own or rng.random() < 0.33):
                ti = pick(other)
            else:
                ti = own[k % len(own)] if rng.random() < 0.5 else pick(own)
            r = make_doc(POS_TEMPLATES[ti])
            while r is None:
                ti = pick(pools[c])
                r = make_doc(POS_TEMPLATES[ti])
            text, labels, pairs = r
            docs.append({"text": text, "labels": labels, "_meta": {"kind": "positive", "primary": c, "template": f"P{ti}"}})
    for k in range(N_NEG):
        if rng.random() < 0.5:
            ti = k % len(NEG_TEMPLATES) if rng.random() < 0.5 else rng.randrange(len(NEG_TEMPLATES))
            tpl, tid = NEG_TEMPLATES[ti], f"N{ti}"
        else:
            ti = rng.randrange(len(NEG_FRAMES))
            tpl, tid = NEG_FRAMES[ti], f"F{ti}"
        r = make_doc(tpl, positive=False)
        while r is None:
            ti = rng.randrange(len(NEG_FRAMES))
            tpl, tid = NEG_FRAMES[ti], f"F{ti}"
            r = make_doc(tpl, positive=False)
        text, labels, _ = r
        docs.append({"text": text, "labels": [], "_meta": {"kind": "negative", "primary": None, "template": tid}})
    rng.shuffle(docs)

    # final validation pass
    seen = set()
    dup = 0
    for d in docs:
        t = d["text"]
        if t in seen:
            dup += 1
        seen.add(t)
        for c, a, b in d["labels"]:
            assert c in CATEGORIES
            v = t[a:b]
            assert v and v == v.strip()
            if c == "card_number":
                dd = re.sub(r"[ -]", "", v)
                assert dd.isdigit() and luhn_ok(dd) and card_prefix_ok(dd), v
            elif c == "iban":
                assert iban_valid(v), v
            elif c == "us_ssn":
                assert ssn_valid(v), v
            elif c == "ip_address":
                ipaddress.ip_address(v)
            elif c == "phone":
                core = re.split(r"\s*,?\s*(?:[Ee]xt\.?|x)\s*\d+$", v)[0]
                ok = False
                for reg in [None] + [r for r, _ in PHONE_REGIONS]:
                    try:
                        p = pn.parse(core, reg)
                        if pn.is_valid_number(p):
                            ok = True
                            break
                    except pn.NumberParseException:
                        pass
                assert ok, v
            elif c == "email":
                assert re.fullmatch(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}", v), v
            elif c == "private_key":
                assert v.startswith("-----BEGIN") and v.endswith("-----"), v[:30]

    with open(os.path.join(OUT_DIR, "corpus.jsonl"), "w", encoding="utf-8") as f, \
            open(os.path.join(OUT_DIR, "corpus_meta.jsonl"), "w", encoding="utf-8") as fm:
        for i, d in enumerate(docs):
            f.write(json.dumps({"text": d["text"], "labels": d["labels"]}, ensure_ascii=False) + "\n")
            fm.write(json.dumps({"line": i, **d["_meta"], "n_labels": len(d["labels"])}) + "\n")

    # summary
    lab = Counter(c for d in docs for c, _, _ in d["labels"])
    docs_with = Counter(c for d in docs for c in {c for c, _, _ in d["labels"]})
    prim = Counter(d["_meta"]["primary"] for d in docs if d["_meta"]["kind"] == "positive")
    npos = sum(1 for d in docs if d["labels"])
    print(f"documents: {len(docs)}  (positive: {npos}, negative: {len(docs) - npos}, duplicate texts: {dup})")
    print(f"labels total: {sum(lab.values())}")
    print(f"{'category':22s} {'labels':>7s} {'docs_with':>9s} {'primary_docs':>12s}")
    for c in CATEGORIES:
        print(f"{c:22s} {lab[c]:7d} {docs_with[c]:9d} {prim[c]:12d}")
    print(f"templates: {len(POS_TEMPLATES)} positive, {len(NEG_TEMPLATES)} negative, {len(NEG_FRAMES)} negative frames")
    print("audit rejections during generation (regenerated):", dict(audit_rejects))
    for k, v in audit_examples.items():
        print("  e.g.", k, v[:4])


if __name__ == "__main__":
    sys.path.insert(0, OUT_DIR)
    main()

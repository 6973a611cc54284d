"""Generate the secrets corpus: credentials in prose, configs, code, connection strings and URLs,
and as many realistic non-secrets (hashes, UUIDs, placeholders, public keys, identifiers).

Run from the repository root: ``.venv/bin/python data/secrets-eval/generate.py``. Deterministic.
Every value is random (no real credential is in this file); labels are ``{"type": "SECRET",
"kind": <family>}`` on the secret value itself (for a connection string or URL, the password or
token part). Two splits, kept apart the way the PII sets are:

- ``secrets-dev.jsonl`` (seed 11): what the detectors were tuned on; the *even*-indexed
  templates of each family and the even-indexed key names.
- ``secrets-test.jsonl`` (seed 12): what the docs report; the *odd*-indexed templates and key
  names, so no sentence shape or variable name the rules were tuned against appears in it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
HEX = "0123456789abcdef"


def half(items: list, split: str) -> list:
    return items[0::2] if split == "dev" else items[1::2]


class Gen:
    """Random credentials in the shapes vendors issue (none is real)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def mixed(self, n: int) -> str:
        while True:
            s = self.chars(ALNUM, n)
            if any(c.isdigit() for c in s) and any(c.isupper() for c in s) and any(
                    c.islower() for c in s):
                return s

    def family(self) -> tuple[str, str]:
        r = self.rng
        kind = r.choice(["aws", "github", "gitlab", "slack", "stripe", "sendgrid", "npm", "pypi",
                         "hf", "shopify", "telegram", "google_oauth", "digitalocean", "mailgun",
                         "openai", "anthropic", "generic_hex", "generic_b64", "generic_mixed",
                         "jwt", "password", "databricks", "atlassian", "square"])
        value = {
            "aws": lambda: "AKIA" + self.chars(string.ascii_uppercase + string.digits, 16),
            "github": lambda: r.choice(["ghp_", "gho_", "ghs_"]) + self.mixed(36),
            "gitlab": lambda: "glpat-" + self.chars(ALNUM + "-_", 20),
            "slack": lambda: "xoxb-" + self.chars(string.digits, 12) + "-" + self.chars(
                string.digits, 13) + "-" + self.mixed(24),
            "stripe": lambda: r.choice(["sk_live_", "rk_live_"]) + self.mixed(24),
            "sendgrid": lambda: "SG." + self.mixed(22) + "." + self.mixed(43),
            "npm": lambda: "npm_" + self.mixed(36),
            "pypi": lambda: "pypi-AgEIcHlwaS5vcmc" + self.chars(ALNUM + "-_", 60),
            "hf": lambda: "hf_" + self.mixed(34),
            "shopify": lambda: r.choice(["shpat_", "shpss_", "shpca_"]) + self.chars(HEX, 32),
            "telegram": lambda: str(r.randint(10**8, 10**10)) + ":AA" + self.chars(
                ALNUM + "-_", 33),
            "google_oauth": lambda: "GOCSPX-" + self.chars(ALNUM + "-_", 28),
            "digitalocean": lambda: "dop_v1_" + self.chars(HEX, 64),
            "mailgun": lambda: "key-" + self.chars(HEX, 32),
            "openai": lambda: "sk-proj-" + self.mixed(48),
            "anthropic": lambda: "sk-ant-api03-" + self.chars(ALNUM + "-_", 80),
            "generic_hex": lambda: self.chars(HEX, r.choice([32, 40, 64])),
            "generic_b64": lambda: base64.b64encode(bytes(r.randrange(256) for _ in range(
                r.choice([24, 32, 48])))).decode(),
            "generic_mixed": lambda: self.mixed(r.choice([24, 32, 40])),
            "jwt": lambda: self.jwt(),
            "password": lambda: self.password(),
            "databricks": lambda: "dapi" + self.chars(HEX, 32),
            "atlassian": lambda: "ATATT3xFfGF0" + self.chars(ALNUM + "-_", 60),
            "square": lambda: "EAAA" + self.chars(ALNUM + "-_", 60),
        }[kind]()
        return kind, value

    def jwt(self) -> str:
        def enc(obj: dict) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
        head = enc({"alg": self.rng.choice(["HS256", "RS256"]), "typ": "JWT"})
        body = enc({"sub": str(self.rng.randint(1000, 99999)), "iat": 1700000000})
        return f"{head}.{body}.{self.chars(ALNUM + '-_', 43)}"

    def password(self) -> str:
        r = self.rng
        word = r.choice(["Summer", "Tiger", "blue", "Orchid", "falcon", "Winter", "maple"])
        return word + r.choice(["!", "#", "@", "$", "_"]) + str(r.randint(10, 9999)) + r.choice(
            ["", "x", "Q", "!"])


# Key names as code and configs spell them (split by parity between dev and test).
KEY_NAMES = ["api_key", "apiKey", "API_TOKEN", "access_token", "auth_token", "secret_key",
             "client_secret", "SECRET", "token", "x-api-key", "apikey", "private_token",
             "bearer_token", "app_secret", "SERVICE_KEY", "refresh_token", "consumer_secret",
             "webhook_secret", "signing_key", "master_key"]
PASSWORD_NAMES = ["password", "db_password", "PASSWORD", "passwd", "admin_pass", "pwd",
                  "mysql_root_password", "smtp_password", "pass", "user_password"]

# Templates: {K} key name, {V} the secret (labelled), {P} password name, {W} password.
TEMPLATES: dict[str, list[str]] = {
    "prose": [
        "Here is the key for staging: {V} - please rotate it after the demo.",
        "I pasted my token {V} into the ticket by mistake, sorry!",
        "Use {V} as the API key until the new vault is ready.",
        "The integration broke because someone revoked {V} yesterday.",
        "FYI the bot token is {V}",
        "New credentials issued ({V}); old one expires Friday.",
    ],
    "config": [
        "{K}: {V}\ntimeout: 30\nretries: 3",
        "[service]\n{K} = {V}\nregion = eu-west-1",
        "{{\n  \"{K}\": \"{V}\",\n  \"endpoint\": \"https://api.example.com\"\n}}",
        "{K}={V}\nLOG_LEVEL=debug",
        "<add key=\"{K}\" value=\"{V}\" />",
        "{K} = \"{V}\"\nenabled = true",
        "  {K}: \"{V}\"\n  mode: production",
        "export {KU}={V}",
    ],
    "code": [
        "{K} = \"{V}\"\nclient = Client({K})",
        "const {KC} = '{V}';\nfetch(url, {{ headers: {{ Authorization: {KC} }} }});",
        "String {KC} = \"{V}\";",
        "{KC} := \"{V}\"",
        "var {KC} = \"{V}\"; // TODO move to vault",
        "headers = {{\"Authorization\": \"Bearer {V}\"}}",
        "curl -H \"Authorization: Bearer {V}\" https://api.example.com/v2/items",
        "client.login(token='{V}')",
        "os.environ.setdefault(\"{KU}\", \"{V}\")",
        "$config['{K}'] = '{V}';",
    ],
    "connection": [
        "DATABASE_URL=postgres://app:{W}@db.internal:5432/app",
        "mongodb+srv://admin:{W}@cluster0.abcde.mongodb.net/test",
        "Server=tcp:sql.example.net,1433;Database=main;User ID=app;Password={W};",
        "jdbc:mysql://db.example.com:3306/shop?user=shop&password={W}",
        "redis://:{W}@cache.example.com:6379/0",
        "amqp://guest:{W}@mq.example.com:5672/",
    ],
    "url": [
        "https://api.example.com/v1/report?api_key={V}&format=csv",
        "GET /oauth/callback?access_token={V}&state=xyz",
        "https://deploy:{W}@git.example.com/org/repo.git",
        "wss://stream.example.com/socket?token={V}",
        "https://hooks.example.com/trigger?key={V}",
        "Open https://files.example.com/s/report.pdf?sig={V}&se=2025-01-01",
    ],
    "password": [
        "{P}: {W}",
        "{P} = \"{W}\"",
        "the wifi password is {W}",
        "login with admin / {W}",
        "{P}={W}",
        "Your temporary password: {W}",
    ],
}

# Realistic non-secrets with the same shapes ({H} hash, {U} uuid, ...).
NEGATIVES = [
    "commit {SHA1} fixed the race in the scheduler",
    "sha256: {SHA256}",
    "md5sum {MD5}  release.tar.gz",
    "request_id = \"{UUID}\"",
    "Correlation ID {UUID} (include it when you contact support)",
    "{K}: ${{{KU}}}",
    "{K} = os.environ[\"{KU}\"]",
    "{K}: <your-api-key-here>",
    "{K} = \"YOUR_API_KEY\"",
    "{K}=xxxxxxxxxxxxxxxxxxxxxxxx",
    "{P}: ********",
    "{P} = None",
    "{P}: \"changeme\"",
    "Password must be at least 12 characters and include a symbol.",
    "Click Reset Password to choose a new one.",
    "ssh-rsa {PUB} deploy@build",
    "integrity=\"sha384-{B64HASH}\"",
    "token = get_secret(\"payments/{K}\")",
    "{K} = settings.{K}",
    "import {{ {CAMEL} }} from './{CAMEL}';",
    "Build artifact {MD5}-{SHA1}",
    "docker pull registry.example.com/app@sha256:{SHA256}",
    "etag: \"{MD5}\"",
    "const {KC} = process.env.{KU};",
    "{K}: !vault |\n  $ANSIBLE_VAULT;1.1;AES256",
    "The AccountManagerServiceFactory handles retries.",
    "path /usr/local/share/ca-certificates/internal-root-ca.crt",
    "base64 image data:image/png;base64,iVBORw0KGgo",
    "{K} = \"\"  # set in production",
    "Tracking number 1Z999AA10123456784 delivered.",
]


def fill(rng: random.Random, g: Gen, tpl: str, key_names: list[str],
         pw_names: list[str]) -> dict:
    """Fill a template; only {V} and {W} are labelled."""
    k = rng.choice(key_names)
    camel = k.replace("-", "_").split("_")
    kc = camel[0].lower() + "".join(p.capitalize() for p in camel[1:])
    slots = {
        "K": k, "KU": k.upper().replace("-", "_"), "KC": kc, "P": rng.choice(pw_names),
        "SHA1": hashlib.sha1(g.chars(ALNUM, 12).encode()).hexdigest(),
        "SHA256": hashlib.sha256(g.chars(ALNUM, 12).encode()).hexdigest(),
        "MD5": hashlib.md5(g.chars(ALNUM, 12).encode()).hexdigest(),
        "UUID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "PUB": "AAAAB3NzaC1yc2E" + g.chars(B64, 200),
        "B64HASH": base64.b64encode(hashlib.sha384(g.chars(ALNUM, 9).encode()).digest()).decode(),
        "CAMEL": rng.choice(["UserProfileCard", "PaymentIntentForm", "useAuthTokenRefresh"]),
    }
    kind, value = g.family()
    if kind == "password" and "{V}" in tpl:
        kind, value = "generic_mixed", g.mixed(32)
    slots["V"] = value
    slots["W"] = g.password()
    text = ""
    entities = []
    pos = 0
    import re

    for m in re.finditer(r"\{\{|\}\}|\{(\w+)\}", tpl):
        text += tpl[pos:m.start()]
        if m.group(1) is None:
            text += m.group()[0]
        else:
            val = slots[m.group(1)]
            if m.group(1) in ("V", "W"):
                entities.append({"type": "SECRET", "start": len(text),
                                 "end": len(text) + len(val),
                                 "kind": kind if m.group(1) == "V" else "password"})
            text += val
        pos = m.end()
    text += tpl[pos:]
    return {"text": text, "entities": entities}


def corpus(split: str, seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    g = Gen(rng)
    keys, pws = half(KEY_NAMES, split), half(PASSWORD_NAMES, split)
    families = {f: half(t, split) for f, t in TEMPLATES.items()}
    negatives = half(NEGATIVES, split)
    docs = []
    for i in range(n):
        if i % 2 == 0:
            fam = rng.choice(sorted(families))
            doc = fill(rng, g, rng.choice(families[fam]), keys, pws)
            docs.append({"kind": fam, **doc})
        else:
            doc = fill(rng, g, rng.choice(negatives), keys, pws)
            docs.append({"kind": "negative", "text": doc["text"], "entities": []})
    return docs


def main() -> int:
    for split, seed in (("dev", 11), ("test", 12)):
        docs = corpus(split, seed, 800)
        (HERE / f"secrets-{split}.jsonl").write_text(
            "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

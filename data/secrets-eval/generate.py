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
- ``secrets-fresh.jsonl`` (seed 13): written and frozen (sha256 in ``README.md``) before the
  public-key fix was run on it, to measure that fix on data it was not found on: half the
  samples as the test split makes them (odd templates, new seed), half from new families
  written for it: public keys in every common format (OpenSSH ``ssh-*``/``ecdsa-*``/``sk-*``
  keys and certificates in authorized_keys, known_hosts, configs and prose; PEM ``PUBLIC KEY``,
  ``RSA PUBLIC KEY``, RFC 4716, PGP public blocks, X.509 certificates, JWK public keys) as
  negatives, and private keys (OpenSSH, PKCS#1, SEC1, PKCS#8, encrypted, PGP; bare, in JSON,
  in YAML, beside their public half) and secrets on a line with a public key as positives.
  Key material is random bytes in each format's real structure (SSH wire format, DER), so
  every blob decodes as what it claims to be; none is a usable key.
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


# --- the fresh split: key material in its real structure -------------------------------------


def _ssh_string(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def _mpint(n: int) -> bytes:
    raw = n.to_bytes((n.bit_length() + 7) // 8 + 1, "big")  # a leading 0: positive
    return _ssh_string(raw)


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _der_int(n: int) -> bytes:
    return _der(0x02, n.to_bytes((n.bit_length() + 7) // 8 + 1, "big"))


def _wrap(b64: str, width: int) -> str:
    return "\n".join(b64[i:i + width] for i in range(0, len(b64), width))


class KeyGen:
    """Public and private key material with random bytes in each format's real structure."""

    SSH_TYPES = ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                 "ssh-dss", "sk-ssh-ed25519@openssh.com", "ssh-ed25519-cert-v01@openssh.com"]

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def rand(self, n: int) -> bytes:
        return bytes(self.rng.randrange(256) for _ in range(n))

    def big(self, bits: int) -> int:
        return self.rng.getrandbits(bits) | (1 << (bits - 1)) | 1

    def ssh_blob(self, kind: str) -> bytes:
        name = kind.encode()
        if kind == "ssh-rsa":
            return _ssh_string(name) + _mpint(65537) + _mpint(self.big(
                self.rng.choice([2048, 3072, 4096])))
        if kind == "ssh-dss":
            return _ssh_string(name) + b"".join(_mpint(self.big(b)) for b in (1024, 160, 1024, 1024))
        if kind.startswith("ecdsa-"):
            curve = kind.rsplit("-", 1)[1]
            size = {"nistp256": 64, "nistp384": 96}[curve]
            return _ssh_string(name) + _ssh_string(curve.encode()) + _ssh_string(
                b"\x04" + self.rand(size))
        if kind.startswith("sk-"):
            return _ssh_string(name) + _ssh_string(self.rand(32)) + _ssh_string(b"ssh:")
        if kind.endswith("-cert-v01@openssh.com"):
            return (_ssh_string(name) + _ssh_string(self.rand(32)) + _ssh_string(self.rand(32))
                    + self.rand(8) + (1).to_bytes(4, "big") + _ssh_string(b"deploy")
                    + self.rand(180))
        return _ssh_string(name) + _ssh_string(self.rand(32))  # ssh-ed25519

    def ssh_public(self) -> tuple[str, str]:
        kind = self.rng.choice(self.SSH_TYPES)
        return kind, base64.b64encode(self.ssh_blob(kind)).decode()

    def spki(self) -> bytes:
        """A SubjectPublicKeyInfo (what PEM ``PUBLIC KEY`` holds): RSA, P-256 or Ed25519."""
        kind = self.rng.choice(["rsa", "ec", "ed25519"])
        if kind == "ed25519":
            return bytes.fromhex("302a300506032b6570032100") + self.rand(32)
        if kind == "ec":
            return bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200"
                                 "04") + self.rand(64)
        rsa = _der(0x30, _der_int(self.big(2048)) + _der_int(65537))
        alg = bytes.fromhex("300d06092a864886f70d0101010500")
        return _der(0x30, alg + _der(0x03, b"\x00" + rsa))

    def pem(self, label: str, der: bytes) -> str:
        return (f"-----BEGIN {label}-----\n" + _wrap(base64.b64encode(der).decode(), 64)
                + f"\n-----END {label}-----")

    def public_pem(self) -> str:
        r = self.rng
        which = r.choice(["spki", "spki", "pkcs1", "ssh2", "pgp", "cert"])
        if which == "spki":
            return self.pem("PUBLIC KEY", self.spki())
        if which == "pkcs1":
            return self.pem("RSA PUBLIC KEY", _der(0x30, _der_int(self.big(2048))
                                                   + _der_int(65537)))
        if which == "ssh2":
            kind = r.choice(["ssh-rsa", "ssh-ed25519"])
            body = _wrap(base64.b64encode(self.ssh_blob(kind)).decode(), 70)
            return ("---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"" + r.choice(
                ["ops@bastion", "2048-bit RSA, converted by alice@ws01", "ci runner"])
                + "\"\n" + body + "\n---- END SSH2 PUBLIC KEY ----")
        if which == "pgp":
            body = _wrap(base64.b64encode(b"\x99\x01\x0d\x04" + self.rand(300)).decode(), 64)
            return ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n" + body + "\n="
                    + base64.b64encode(self.rand(3)).decode()
                    + "\n-----END PGP PUBLIC KEY BLOCK-----")
        tbs = _der(0x30, bytes.fromhex("a003020102") + _der_int(self.big(64)) + self.spki()
                   + self.rand(120))
        return self.pem("CERTIFICATE", _der(0x30, tbs + self.rand(270)))

    def jwk_public(self) -> str:
        b64u = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")  # noqa: E731
        kid = b64u(self.rand(12))
        if self.rng.random() < 0.5:
            return ('{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "' + kid + '", "n": "'
                    + b64u(self.big(2048).to_bytes(256, "big")) + '", "e": "AQAB"}')
        return ('{"kty": "EC", "crv": "P-256", "kid": "' + kid + '", "x": "'
                + b64u(self.rand(32)) + '", "y": "' + b64u(self.rand(32)) + '"}')

    def private_pem(self) -> str:
        r = self.rng
        which = r.choice(["openssh", "rsa", "ec", "pkcs8", "encrypted", "pgp"])
        if which == "openssh":
            blob = (b"openssh-key-v1\x00" + _ssh_string(b"none") + _ssh_string(b"none")
                    + _ssh_string(b"") + (1).to_bytes(4, "big")
                    + _ssh_string(self.ssh_blob("ssh-ed25519")) + self.rand(150))
            return ("-----BEGIN OPENSSH PRIVATE KEY-----\n" + _wrap(
                base64.b64encode(blob).decode(), 70) + "\n-----END OPENSSH PRIVATE KEY-----")
        if which == "rsa":
            ints = b"".join(_der_int(self.big(b)) for b in (2048, 17, 2048, 1024, 1024, 1024,
                                                               1024, 1024))
            return self.pem("RSA PRIVATE KEY", _der(0x30, _der_int(0) + ints))
        if which == "ec":
            return self.pem("EC PRIVATE KEY", _der(0x30, _der_int(1) + _der(0x04, self.rand(32))
                                                   + self.rand(80)))
        if which == "pkcs8":
            return self.pem("PRIVATE KEY", bytes.fromhex("302e020100300506032b657004220420")
                            + self.rand(32))
        if which == "encrypted":
            return self.pem("ENCRYPTED PRIVATE KEY", _der(0x30, self.rand(300)))
        body = _wrap(base64.b64encode(b"\x95\x03\xc6\x04" + self.rand(400)).decode(), 64)
        return ("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n" + body
                + "\n-----END PGP PRIVATE KEY BLOCK-----")


def _comment(rng: random.Random) -> str:
    return rng.choice(["alice@laptop", "deploy@ci-runner-3", "root@bastion.example.net",
                       "backup key 2024", "jenkins", "ops-team", ""])


def public_negative(rng: random.Random, k: KeyGen) -> str:
    """One sample whose only key material is public."""
    kind, blob = k.ssh_public()
    line = f"{kind} {blob} {_comment(rng)}".rstrip()
    host = rng.choice(["github.com", "gitlab.example.org,10.0.4.17", "[git.example.com]:2222",
                       "bastion.internal"])
    salt, digest = (base64.b64encode(k.rand(20)).decode() for _ in range(2))
    shapes = [
        lambda: line,
        lambda: "# ~/.ssh/authorized_keys\n" + rng.choice([
            'command="/usr/local/bin/rrsync -ro /srv/backup",no-pty,no-agent-forwarding ',
            'from="10.0.0.0/8",no-port-forwarding ', "restrict ", ""]) + line,
        lambda: f"{host} {kind} {blob}",
        lambda: f"|1|{salt}|{digest} {kind} {blob}",
        lambda: "users:\n  - name: deploy\n    ssh_authorized_keys:\n      - " + line,
        lambda: 'resource "aws_key_pair" "deployer" {\n  key_name   = "deployer"\n'
                f'  public_key = "{line}"\n}}',
        lambda: json.dumps({"title": "ci deploy key", "key": line, "read_only": True}),
        lambda: f"Add this deploy key to the repository settings:\n\n    {line}\n",
        lambda: f"$ cat ~/.ssh/id_{kind.split('-')[-1].split('@')[0]}.pub\n{line}",
        lambda: k.public_pem(),
        lambda: "Verify webhook signatures with our public key:\n\n" + k.public_pem(),
        lambda: json.dumps({"kid": "2024-05", "public_key": k.pem("PUBLIC KEY", k.spki())
                            + "\n"}),
        lambda: "jwks_uri returns:\n" + '{"keys": [' + k.jwk_public() + "]}",
        lambda: "ssl_certificate_key is private; this is the certificate:\n" + k.pem(
            "CERTIFICATE", _der(0x30, k.rand(600))),
    ]
    return rng.choice(shapes)()


def private_positive(rng: random.Random, k: KeyGen, g: Gen) -> dict:
    """A private key (labelled, the whole block) or a secret beside a public key."""
    if rng.random() < 0.3:  # a token on a line with a public key: the token is the secret
        kind, blob = k.ssh_public()
        value = g.family()[1]
        pre = rng.choice([f"{kind} {blob} ci@runner\nGITHUB_TOKEN=",
                          f"deploy key: {kind} {blob}\napi token: ",
                          f'{{"ssh_key": "{kind} {blob}", "access_token": "'])
        post = '"}' if pre.endswith('"') else ""
        return {"text": pre + value + post, "entities": [
            {"type": "SECRET", "start": len(pre), "end": len(pre) + len(value),
             "kind": "beside_public_key"}]}
    pem = k.private_pem()
    shapes = [
        lambda: ("", pem, ""),
        lambda: ("$ cat ~/.ssh/id_ed25519\n", pem, "\n$ cat ~/.ssh/id_ed25519.pub\n"
                 + " ".join(k.ssh_public()) + " " + _comment(rng)),
        lambda: ('{"type": "service_account", "private_key": "', pem.replace("\n", "\\n"),
                 '\\n", "client_email": "svc@project.iam.gserviceaccount.com"}'),
        lambda: ("tls:\n  key: |\n    ", pem.replace("\n", "\n    "), "\n  cert: ./server.crt"),
        lambda: ("Oops, I pasted the wrong file, ignore this:\n", pem, "\nSorry!"),
    ]
    pre, body, post = rng.choice(shapes)()
    return {"text": pre + body + post, "entities": [
        {"type": "SECRET", "start": len(pre), "end": len(pre) + len(body),
         "kind": "private_key"}]}


def fresh_corpus(seed: int, n: int) -> list[dict]:
    """The test split's shapes with a new seed, and the new key-material families (above)."""
    rng = random.Random(seed)
    g, k = Gen(rng), KeyGen(rng)
    base = corpus("test", seed, n)
    docs = []
    for i, doc in enumerate(base):
        if rng.random() < 0.5:
            docs.append(doc)
        elif i % 2 == 0:
            docs.append({"kind": "key_material", **private_positive(rng, k, g)})
        else:
            docs.append({"kind": "public_key", "text": public_negative(rng, k), "entities": []})
    return docs


def main() -> int:
    for split, seed in (("dev", 11), ("test", 12)):
        docs = corpus(split, seed, 800)
        (HERE / f"secrets-{split}.jsonl").write_text(
            "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    docs = fresh_corpus(13, 800)
    (HERE / "secrets-fresh.jsonl").write_text(
        "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`secret(...)`: credential detectors; matched values are only ever shown masked."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import re2

from gates import scan
from gates.base import Detector, DetectorCheck, Match, keep_longest
from gates.lazyre import LazyRegex, lazy_re

_OPTS = re2.Options()
_OPTS.log_errors = False

Finder = Callable[[str], list[Match]]


def mask_secret(value: str, keep: int | None = None) -> str:
    """Keep a recognisable, non-secret prefix (``AKIA``, ``ghp_``) and the length, nothing more.
    Without a known prefix, short values (passwords) keep nothing at all."""
    if keep is None:
        keep = min(4, len(value) // 10)
    keep = min(keep, len(value) // 2)
    return value[:keep] + "…" + f"[{len(value)} chars]"


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value`` under its own character frequencies."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")


def _secret_finder(
    name: str,
    patterns: str | Sequence[str],
    *,
    keep: int = 4,
    score: float = 0.95,
    validate: Callable[[str], bool] | None = None,
    tail: frozenset[str] = _B64,
    outside: Callable[[str], list[tuple[int, int]]] | None = None,
) -> Finder:
    """Value patterns (a capturing group picks the value out of its context). A value glued to
    more token characters on the right is part of something longer and not this secret. With
    ``outside``, a value overlapping one of the spans it returns for the text is dropped."""
    rxs = [LazyRegex(p, _OPTS) for p in ([patterns] if isinstance(patterns, str) else patterns)]

    def finder(text: str) -> list[Match]:
        out: list[Match] = []
        skip = outside(text) if outside is not None else []
        for rx in rxs:
            for s, e in scan.value_spans(rx, text):  # the document's bytes, encoded once
                if e <= s or (e < len(text) and text[e] in tail):
                    continue
                if skip and any(a < e and s < b for a, b in skip):
                    continue
                value = text[s:e]
                if validate is not None and not validate(value):
                    continue
                out.append(Match(s, e, detail=name, score=score, display=mask_secret(value, keep)))
        return keep_longest(out) if len(rxs) > 1 else out

    return scan.with_triggers(finder, tuple((rx.pattern,) for rx in rxs))


def _union(*finders: Finder) -> Finder:
    def finder(text: str) -> list[Match]:
        return keep_longest([m for f in finders for m in f(text)])

    return scan.with_triggers(finder, scan.union_triggers(*finders))


# Values people write in examples and templates instead of a real credential.
_PLACEHOLDERS = LazyRegex(
    r"(?i)^(?:\$\{?[A-Za-z_]\w*\}?|\$\{.*\}|\{\{.*|<.*>|%\(\w+\)s|%s|\*+|x+|\.+|-+|_+|none|null|nil|true|false|"
    r"password\d*|passw(?:or)?d|pass|secret|changeme|change_me|example|redacted|hidden|"
    r"your[_-]?.*|my[_-]?password|placeholder|dummy|test|todo|tbd|required|optional|"
    r"env\(.*|os\.environ.*|getenv.*|process\.env.*|\[.*\]|masked|\.\.\.|…)$",
    _OPTS,
)


_CODE_VALUE = LazyRegex(r"^(?:[a-z_][a-z0-9_.]*\(|[a-z_]\w*(?:\.[A-Za-z_]\w*)+$)", _OPTS)


def _real_password(value: str) -> bool:
    """A quoted literal that is not a placeholder (``changeme``, ``${DB_PASSWORD}``, ``<pw>``)."""
    value = value.strip()
    return len(value) >= 4 and _PLACEHOLDERS.search(value) is None


def _unquoted_password(value: str) -> bool:
    """Unquoted ``password: value``: in prose it is usually a word ('Password: must be ...'), so
    require something a chosen password has: a digit or symbol, or mixed case."""
    if not _real_password(value) or len(value) < 6:
        return False
    # a call or an attribute (get_secret(...), settings.db_password) is code, not a literal
    if _CODE_VALUE.search(value):
        return False
    has_digit = any(c.isdigit() for c in value)
    has_symbol = any(not c.isalnum() for c in value)
    mixed = any(c.isupper() for c in value[1:]) and any(c.islower() for c in value)
    return has_digit or has_symbol or mixed


def _db_password_ok(value: str) -> bool:
    return len(value) >= 3 and _PLACEHOLDERS.search(value) is None


def _jwt_ok(value: str) -> bool:
    header = value.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        obj = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(obj, dict) and "alg" in obj


def _openai_ok(value: str) -> bool:
    body = value[3:]
    if value.startswith("sk-ant-") or len(body) < 32:
        return False
    return (
        any(c.isdigit() for c in body)
        and any(c.isupper() for c in body)
        and any(c.islower() for c in body)
    )


_UUID = LazyRegex(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12}$",
    _OPTS,
)
_HEX = frozenset("0123456789abcdefABCDEF")
_SEPARATORS = LazyRegex(r"[-_/.+]", _OPTS)
_WORDISH = LazyRegex(r"[A-Z][a-z]{2,}|[a-z]{5,}", _OPTS)


# Public key material: not a secret, however random it looks. What each format says of itself.
#
# An OpenSSH public key or certificate (authorized_keys, known_hosts, *.pub) is the base64 of
# the SSH wire format, whose first field is the key type as a string: a uint32 length (so the
# base64 starts "AAAA") and the name. A private key never has that shape: OpenSSH's private
# format starts "openssh-key-v1", PEM private keys are DER.
_SSH_KEY_TYPE = lazy_re(
    r"(?:ssh-(?:rsa|dss|ed25519|ed448)|ecdsa-sha2-nistp(?:256|384|521)|"
    r"sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com|"
    r"(?:ssh-(?:rsa|dss|ed25519|ed448)|ecdsa-sha2-nistp(?:256|384|521)|"
    r"sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)-cert-v0[01]@openssh\.com)"
)


def ssh_public_blob(token: str) -> bool:
    """Whether ``token`` is the base64 of an SSH public key or certificate blob: it decodes to
    a length-prefixed string naming a known key type (``ssh-ed25519``, ``ecdsa-sha2-nistp256``,
    ``sk-ssh-ed25519@openssh.com``, their ``-cert-v01@openssh.com`` forms, ...)."""
    if not token.startswith("AAAA"):
        return False
    head = token[:64]  # 48 bytes: room for the longest type name (43) and its length
    try:
        raw = base64.b64decode(head[: len(head) - len(head) % 4], validate=True)
    except (binascii.Error, ValueError):
        return False
    n = int.from_bytes(raw[:4], "big")
    name = raw[4 : 4 + n]
    return 0 < n == len(name) and _SSH_KEY_TYPE.fullmatch(name.decode("latin-1")) is not None


# PEM and RFC 4716 blocks that hold public material: "PUBLIC KEY", "RSA PUBLIC KEY", "PGP
# PUBLIC KEY BLOCK", "SSH2 PUBLIC KEY", "CERTIFICATE". The body never holds "--", so a block
# cannot run on into the next one (a private key after a public key stays outside).
_PUBLIC_BLOCK = LazyRegex(
    r"-----BEGIN (?:[A-Z0-9]+ )*(?:PUBLIC KEY(?: BLOCK)?|CERTIFICATE)-----(?:[^-]|-[^-])*?"
    r"-----END (?:[A-Z0-9]+ )*(?:PUBLIC KEY(?: BLOCK)?|CERTIFICATE)-----"
    r"|---- BEGIN SSH2 PUBLIC KEY ----(?:[^-]|-[^-])*?---- END SSH2 PUBLIC KEY ----",
    _OPTS,
)
# A hashed known_hosts host field ("|1|salt|hash" before a key type): a salted hash of a host
# name, which the public key after it identifies
_HASHED_HOST = LazyRegex(
    r"\|1\|[A-Za-z0-9+/]{27}=\|[A-Za-z0-9+/]{27}=[ \t]+(?:ssh-|ecdsa-|sk-)", _OPTS
)
# A JSON Web Key (one flat object with "kty"); public unless it has a private member
_JWK = LazyRegex(r"\{[^{}]*\"kty\"[ \t]*:[ \t]*\"(?:RSA|EC|OKP)\"[^{}]*\}", _OPTS)
_JWK_PRIVATE = lazy_re(r'"(?:d|p|q|dp|dq|qi|oth)"[ \t]*:')


def public_key_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` holds public key material by its framing: PEM/RFC 4716 public key and
    certificate blocks, hashed known_hosts host fields, public JWKs. (A bare OpenSSH public
    key needs no framing: :func:`ssh_public_blob` tells it by its bytes.) Each pattern runs
    only when its marker is in the text, so most documents pay three substring searches."""
    out: list[tuple[int, int]] = []
    if "PUBLIC KEY" in text or "CERTIFICATE-----" in text:
        out += [m.span() for m in _PUBLIC_BLOCK.finditer(text)]
    if "|1|" in text:
        out += [m.span() for m in _HASHED_HOST.finditer(text)]
    if '"kty"' in text:
        out += [m.span() for m in _JWK.finditer(text) if not _JWK_PRIVATE.search(m.group())]
    return out


def high_entropy_ok(token: str) -> bool:
    """Whether a candidate token looks like a random credential rather than prose, an
    identifier, a path, a UUID or a published hash.

    Hex strings (git SHAs, sha256 digests, UUIDs) are never flagged on entropy alone: they are
    everywhere in release notes and docs. A base64-alphabet token must mix upper case, lower
    case and digits (identifiers and words do not), and its entropy must come close to what a
    random string of its length has: >= 4.0 bits/char and within ~0.9 bits of log2(length)
    for tokens shorter than the alphabet.
    """
    if len(token) > 1024:  # encoded blobs (images, archives), not credentials
        return False
    if token.startswith(("sha256-", "sha384-", "sha512-")):  # subresource integrity digests
        return False
    if set(token) <= _HEX or _UUID.search(token) or set(token.replace("-", "")) <= _HEX:
        return False
    if ssh_public_blob(token):  # an OpenSSH public key: public by design
        return False
    if not (
        any(c.isupper() for c in token)
        and any(c.islower() for c in token)
        and any(c.isdigit() for c in token)
    ):
        return False
    # paths, kebab-case and snake_case names are made of words; random tokens are not
    parts = [p for p in _SEPARATORS.split(token) if p]
    if len(parts) >= 3 and sum(p.isalpha() for p in parts) >= 0.75 * len(parts):
        return False
    # CamelCase identifiers: most characters sit in dictionary-looking runs ("Pool", "Manager")
    if sum(len(w) for w in _WORDISH.findall(token)) >= 0.6 * len(token):
        return False
    h = shannon_entropy(token)
    return h >= 4.0 and h >= min(4.8, math.log2(len(token)) - 0.9)


_CODE_REF = LazyRegex(
    r"(?i)^(?:os\.|process\.|env\.|settings\.|config\.|self\.|this\.|get_?\w*\(|"
    r"\w+\(|\$\{?|\{\{|%\(|<|\[|ENV\[)",
    _OPTS,
)


def token_value_ok(value: str) -> bool:
    """A value assigned to a credential-named key (``api_key = ...``) or sent as a bearer /
    query token: long enough, not a placeholder or a reference to where the secret lives, and
    made like a token (letters and digits, no run of dictionary-looking words). Hex is fine
    here: the key name says what it is."""
    value = value.strip().strip("\"'")
    if len(value) < 16 or len(value) > 512:
        return False
    if _PLACEHOLDERS.search(value) or _CODE_REF.search(value) or _UUID.search(value):
        return False
    if ssh_public_blob(value):
        return False
    low = value.lower()
    if any(
        w in low
        for w in (
            "example",
            "your",
            "xxxx",
            "change",
            "placeholder",
            "redacted",
            "dummy",
            "sample",
            "test_key",
            "0000000",
        )
    ):
        return False
    if not any(c.isdigit() for c in value) or not any(c.isalpha() for c in value):
        return False
    if sum(len(w) for w in _WORDISH.findall(value)) >= 0.6 * len(value):
        return False
    return shannon_entropy(value) >= 3.0


def _url_password_ok(value: str) -> bool:
    return len(value) >= 4 and _PLACEHOLDERS.search(value) is None and not value.isdigit()


# What a key that holds a credential is called: api_key, apiKey, X-Api-Key, access_token,
# client_secret, SECRET, token, signing_key ... (the name may carry a prefix: stripe_api_key).
_SECRET_KEY_NAME = (
    r"(?i:[a-z0-9_.-]*(?:api[_.-]?key|apikey|api[_.-]?token|access[_.-]?token|"
    r"auth[_.-]?token|refresh[_.-]?token|bearer[_.-]?token|private[_.-]?token|"
    r"secret[_.-]?key|client[_.-]?secret|app[_.-]?secret|consumer[_.-]?secret|"
    r"webhook[_.-]?secret|signing[_.-]?key|master[_.-]?key|service[_.-]?key|"
    r"secret|token|credentials?))"
)
_VALUE = r"([A-Za-z0-9+/_.~=-]{16,512})"

# Tokens of the base64/base64url alphabet, 20+ characters. Quote/space-delimited by the class.
_ENTROPY_CANDIDATE = r"[A-Za-z0-9+/_-]{20,}={0,2}"

_DETECTOR_LIST: list[Detector] = [
    Detector(
        "AWS_ACCESS_KEY",
        "AWS access key id (AKIA/ASIA/... + 16 chars)",
        _secret_finder(
            "AWS_ACCESS_KEY",
            r"\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[0-9A-Z]{16}\b",
        ),
    ),
    Detector(
        "AWS_SECRET_KEY",
        "AWS secret access key (40 chars) in an assignment",
        _secret_finder(
            "AWS_SECRET_KEY",
            r"(?i:aws_?secret_?(?:access_?)?key|secret_?access_?key|aws_?secret)[\"']?[ \t]*[:=]"
            r"[ \t]*[\"']?([A-Za-z0-9/+]{40})\b",
            keep=0,
        ),
    ),
    Detector(
        "GCP_API_KEY",
        "Google Cloud / Firebase API key (AIza...)",
        _secret_finder("GCP_API_KEY", r"\bAIza[0-9A-Za-z_-]{35}"),
    ),
    Detector(
        "GCP_SERVICE_ACCOUNT_KEY",
        "private_key of a GCP service-account JSON file",
        _secret_finder(
            "GCP_SERVICE_ACCOUNT_KEY",
            r"\"private_key\"[ \t]*:[ \t]*\"(-----BEGIN [A-Z ]*PRIVATE KEY-----"
            r"[^\"]*)\"",
            keep=0,
            tail=frozenset(),
        ),
    ),
    Detector(
        "AZURE_STORAGE_KEY",
        "Azure storage account key (connection string or assignment)",
        _secret_finder(
            "AZURE_STORAGE_KEY",
            [
                r"(?i:AccountKey)=([A-Za-z0-9+/]{86}==)",
                r"(?i:azure[a-z_]*(?:key|secret))[\"']?[ \t]*[:=][ \t]*[\"']?"
                r"([A-Za-z0-9+/]{86}==)",
                r"(?i:SharedAccessSignature=|[?&]sig=)([A-Za-z0-9%+/=]{30,})",
            ],
            keep=0,
        ),
    ),
    Detector(
        "GITHUB_TOKEN",
        "GitHub token (ghp_/gho_/ghu_/ghs_/ghr_, github_pat_)",
        _secret_finder(
            "GITHUB_TOKEN",
            [r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b", r"\bgithub_pat_[A-Za-z0-9_]{60,255}\b"],
        ),
    ),
    Detector(
        "GITLAB_TOKEN",
        "GitLab personal access token (glpat-)",
        _secret_finder("GITLAB_TOKEN", r"\bglpat-[0-9A-Za-z_-]{20,}", keep=6),
    ),
    Detector(
        "SLACK_TOKEN",
        "Slack bot/user/app token (xoxb-, xoxp-, xoxa-, xoxr-)",
        _secret_finder("SLACK_TOKEN", r"\bxox[abprs]-[0-9A-Za-z-]{10,}", keep=5),
    ),
    Detector(
        "SLACK_WEBHOOK",
        "Slack incoming webhook URL",
        _secret_finder(
            "SLACK_WEBHOOK",
            r"https://hooks\.slack\.com/(?:services|workflows)/T[A-Z0-9]+/[A-Z0-9]+/[A-Za-z0-9]{16,}",
            keep=23,
        ),
    ),
    Detector(
        "STRIPE_KEY",
        "Stripe live secret or restricted key (sk_live_, rk_live_)",
        _secret_finder("STRIPE_KEY", r"\b[rs]k_live_[0-9A-Za-z]{20,}", keep=8),
    ),
    Detector(
        "TWILIO_SID",
        "Twilio account SID (AC...) or API key SID (SK...)",
        _secret_finder("TWILIO_SID", r"\b(?:AC|SK)[0-9a-f]{32}\b", score=0.85),
    ),
    Detector(
        "TWILIO_AUTH_TOKEN",
        "Twilio auth token (32 hex) in a Twilio/auth-token assignment",
        _secret_finder(
            "TWILIO_AUTH_TOKEN",
            r"(?i:twilio[a-z_]*(?:auth)?[a-z_]*token|auth_?token)[\"']?[ \t]*"
            r"[:=][ \t]*[\"']?([0-9a-f]{32})\b",
            keep=0,
        ),
    ),
    Detector(
        "ANTHROPIC_API_KEY",
        "Anthropic API key (sk-ant-...)",
        _secret_finder("ANTHROPIC_API_KEY", r"\bsk-ant-[A-Za-z0-9_-]{20,}", keep=7),
    ),
    Detector(
        "OPENAI_API_KEY",
        "OpenAI-style API key (sk-..., sk-proj-...)",
        _secret_finder(
            "OPENAI_API_KEY",
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
            validate=_openai_ok,
            keep=3,
        ),
    ),
    Detector(
        "JWT",
        "JSON Web Token (header decodes to JSON with 'alg')",
        _secret_finder(
            "JWT",
            r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
            validate=_jwt_ok,
            keep=3,
            score=0.9,
            tail=frozenset("+/="),
        ),
    ),
    Detector(
        "PRIVATE_KEY",
        "PEM private key block (RSA, EC, DSA, OpenSSH, PGP, PKCS#8)",
        _secret_finder(
            "PRIVATE_KEY",
            [
                r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[A-Za-z0-9+/=:, \t\r\n-]|"
                r"\\n)*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----",
                r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----",
            ],
            keep=0,
            tail=frozenset(),
        ),
    ),
    Detector(
        "DATABASE_URL",
        "database URL with an embedded password (postgres://u:p@host)",
        _secret_finder(
            "DATABASE_URL",
            r"\b(?i:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|"
            r"sqlserver|oracle|cockroachdb|clickhouse)(?:\+[a-z0-9]+)?://[^\s:/@\"']*:"
            r"([^\s@/\"']+)@[^\s/\"']+",
            validate=_db_password_ok,
            keep=0,
            # above EMAIL_ADDRESS, which "pass@host" also looks like
            score=0.99,
            tail=frozenset(),
        ),
    ),
    Detector(
        "PASSWORD",
        "password / passphrase / client secret assigned a literal value",
        _union(
            _secret_finder(
                "PASSWORD",
                [
                    r"(?i:\b[a-z0-9_.-]*(?:password|passwd|passphrase|pwd|secret[_-]?key|"
                    r"client[_-]?secret|api[_-]?secret))[\"']?[ \t]*(?::=|=>|[:=])[ \t]*"
                    r"(?:\"([^\"\n]{4,200})\"|'([^'\n]{4,200})')",
                ],
                validate=_real_password,
                keep=0,
                score=0.9,
                tail=frozenset(),
            ),
            # unquoted, as in .env files and YAML, or said in a chat ("my password is ...")
            _secret_finder(
                "PASSWORD",
                [
                    r"(?i:\b(?:[a-z0-9_.-]*(?:password|passwd|passphrase|pwd|_pass)|pass))"
                    r"[ \t]*[=:]"
                    r"[ \t]*([^\s\"'`,;]{6,200})",
                    r"(?i:\b(?:password|passcode|passphrase)s? (?:is|was|=)) ?:?[ \t]*"
                    r"([^\s\"'`,;]{6,200})",
                ],
                validate=_unquoted_password,
                keep=0,
                score=0.8,
                tail=frozenset(),
            ),
        ),
    ),
    Detector(
        "VENDOR_TOKEN",
        "vendor token with a published prefix: SendGrid (SG.), npm "
        "(npm_), PyPI (pypi-), Hugging Face (hf_), Shopify (shpat_/shpss_/shpca_/shppa_), "
        "Telegram bot, Google OAuth client secret (GOCSPX-), DigitalOcean (dop_v1_), "
        "Mailgun (key-), Databricks (dapi), Atlassian (ATATT), Square (EAAA/sq0)",
        _secret_finder(
            "VENDOR_TOKEN",
            [
                r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b",
                r"\bnpm_[A-Za-z0-9]{36}\b",
                r"\bpypi-AgE[A-Za-z0-9_-]{50,}",
                r"\bhf_[A-Za-z0-9]{30,}\b",
                r"\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}\b",
                r"\b\d{8,10}:AA[A-Za-z0-9_-]{33}\b",
                r"\bGOCSPX-[A-Za-z0-9_-]{28}\b",
                r"\bdo[opr]_v1_[a-f0-9]{64}\b",
                r"\bkey-[a-f0-9]{32}\b",
                r"\bdapi[a-f0-9]{32}(?:-\d)?\b",
                r"\bATATT[A-Za-z0-9_=-]{50,}",
                r"\b(?:EAAA[A-Za-z0-9_-]{60}|sq0(?:atp|csp)-[A-Za-z0-9_-]{22,43})\b",
            ],
            keep=4,
            score=0.9,
        ),
    ),
    Detector(
        "GENERIC_SECRET",
        "token-like value assigned to a credential-named key (api_key, "
        "access_token, client_secret, SECRET, ...), sent as a Bearer token or in a URL's "
        "token parameter",
        _secret_finder(
            "GENERIC_SECRET",
            [
                # api_key = "v", apiKey: 'v', "x-api-key": "v", API_TOKEN=v, $c['token'] = 'v'
                r"\b" + _SECRET_KEY_NAME + r"[\"'\]]?[ \t]*(?::=|=>|[:=])[ \t]*[\"'`]?" + _VALUE,
                # os.environ.setdefault("API_KEY", "v"), headers.set('X-Api-Key', 'v')
                r"[\"']" + _SECRET_KEY_NAME + r"[\"'][ \t]*,[ \t]*[\"']" + _VALUE + r"[\"']",
                # <add key="SERVICE_KEY" value="v" />
                r"(?i:key|name)=[\"']"
                + _SECRET_KEY_NAME
                + r"[\"'][ \t]+(?i:value)=[\"']"
                + _VALUE
                + r"[\"']",
                # Authorization: Bearer v; token v
                r"(?i:\bbearer|\bauthorization:[ \t]*token)[ \t]+" + _VALUE,
                # ?api_key=v&..., &access_token=v, ?token=v, ?key=v, ?sig=v
                r"[?&;](?i:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|token|key|sig|"
                r"signature|secret|client[_-]?secret)=([A-Za-z0-9+/_.~%=-]{16,512})",
                # below HIGH_ENTROPY_STRING's 0.6: where both match, the more specific name wins
            ],
            validate=token_value_ok,
            keep=0,
            score=0.55,
            tail=frozenset(),
        ),
    ),
    Detector(
        "URL_CREDENTIALS",
        "password in a URL's user-info (https://user:pass@host)",
        _secret_finder(
            "URL_CREDENTIALS",
            r"\b(?i:https?|ftps?|git|ssh|sftp|wss?|smtp|imaps?|ldaps?|svn)://"
            r"[^\s:/@\"'<>]+:([^\s@/\"'<>]+)@[^\s/\"'<>]+",
            validate=_url_password_ok,
            keep=0,
            score=0.9,
            tail=frozenset(),
        ),
    ),
    Detector(
        "HIGH_ENTROPY_STRING",
        "random-looking base64 token (Shannon entropy; not hex, hashes or UUIDs)",
        _secret_finder(
            "HIGH_ENTROPY_STRING",
            r"(?:^|[^A-Za-z0-9+/_=.-])(" + _ENTROPY_CANDIDATE + ")",
            validate=high_entropy_ok,
            keep=0,
            score=0.6,
            tail=frozenset(),
            outside=public_key_spans,
        ),
        cost=3,
    ),
]

DETECTORS: dict[str, Detector] = {d.name: d for d in _DETECTOR_LIST}


#: bumped whenever what a detector finds changes, so the check's key (and so the ruleset hash
#: that report caches are keyed on) changes with it: a verdict cached when public keys were
#: still flagged must not be served after
DETECTORS_REVISION = 1


class SecretCheck(DetectorCheck):
    kind: ClassVar[str] = "secret"
    cost: ClassVar[int] = 2
    registry: ClassVar[dict[str, Detector]] = DETECTORS

    def canonical(self) -> dict[str, Any]:
        return {**super().canonical(), "revision": DETECTORS_REVISION}

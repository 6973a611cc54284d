"""Generate data/pii-eval/entities.jsonl: short realistic documents with span-level entity labels.

Run from the repository root: ``.venv/bin/python data/pii-eval/generate.py``. Needs Faker (a dev
dependency). Deterministic: a fixed seed, so the committed file can be regenerated exactly.

The documents are written as text first (letters, discharge summaries, memos, configs, release
notes, invoices, claims, logs...) and the values are drawn from Faker or built to the real
formats (valid SSN ranges, Luhn cards, mod-97 IBANs, NANP phone numbers, check-digit VINs,
NPIs, DEA and NHS numbers). Labelling conventions: a name without its title; a date of birth is
DATE_OF_BIRTH, a phone number introduced as a fax is FAX_NUMBER; a database URL or password
assignment is labelled on the password itself; ZIP codes only where they sit in an address.
Near misses are left unlabelled on purpose: UUIDs, git SHAs and sha256 digests, order and
tracking numbers, prices, version numbers, years, ages under 90, invalid-Luhn card numbers,
SSNs in invalid ranges, and names in running prose that has no cue (which our context-based
PERSON detector is expected to miss: those are labelled, and they count against recall).
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from faker import Faker

from gates.pii import luhn_check_digit

SEED = 20261121
# Faker draws dates relative to the clock; pin "now" so the same seed gives the same file.
NOW = datetime(2026, 11, 21, 12, 0, 0)
TODAY = NOW.date()
OUT = Path(__file__).with_name("entities.jsonl")

rng = random.Random(SEED)
fake = Faker("en_US")
fake.seed_instance(SEED)
fake_gb = Faker("en_GB")
fake_gb.seed_instance(SEED + 1)

Value = str | tuple[str, str]  # plain text, or (entity type, value)
_SLOT = re.compile(r"\{(\w+)\}")


def render(template: str, **slots: Value) -> dict:
    """Fill ``{slot}`` markers; a slot given as (TYPE, value) becomes a labelled entity."""
    parts: list[str] = []
    entities: list[dict] = []
    pos = 0
    n = 0
    for m in _SLOT.finditer(template):
        literal = template[pos:m.start()]
        parts.append(literal)
        n += len(literal)
        val = slots[m.group(1)]
        if isinstance(val, tuple):
            typ, text = val
            entities.append({"type": typ, "start": n, "end": n + len(text)})
        else:
            text = val
        parts.append(text)
        n += len(text)
        pos = m.end()
    parts.append(template[pos:])
    return {"text": "".join(parts), "entities": entities}


def merge(*docs: dict, sep: str = "\n") -> dict:
    text = ""
    entities: list[dict] = []
    for d in docs:
        if text:
            text += sep
        off = len(text)
        entities += [{**e, "start": e["start"] + off, "end": e["end"] + off} for e in d["entities"]]
        text += d["text"]
    return {"text": text, "entities": entities}


# ---------------------------------------------------------------------------------------------
# Values in real formats


def person() -> str:
    f = rng.choice([fake, fake, fake_gb])
    if rng.random() < 0.15:
        return f"{f.first_name()} {f.first_name()[0]}. {f.last_name()}"
    return f"{f.first_name()} {f.last_name()}"


def title() -> str:
    return rng.choice(["Mr.", "Ms.", "Mrs.", "Dr.", "Mr", "Ms", "Dr"])


def us_phone() -> str:
    area = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
    while area[1:] == "11":
        area = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
    exch = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(2, 9)}"
    line = f"{rng.randint(0, 9999):04d}"
    fmt = rng.choice(["({a}) {e}-{l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "+1 {a}-{e}-{l}",
                      "({a}) {e}-{l} ext. {x}", "{a}-{e}-{l} x{x}", "1-{a}-{e}-{l}"])
    return fmt.format(a=area, e=exch, l=line, x=rng.randint(10, 9999))


def uk_phone() -> str:
    return rng.choice([
        f"020 7{rng.randint(0, 999):03d} {rng.randint(0, 9999):04d}",
        f"0161 {rng.randint(200, 999)} {rng.randint(0, 9999):04d}",
        f"07{rng.randint(100, 999)} {rng.randint(100000, 999999)}",
        f"+44 20 7{rng.randint(0, 999):03d} {rng.randint(0, 9999):04d}",
        f"+44 (0)113 {rng.randint(200, 999)} {rng.randint(0, 9999):04d}",
        f"01632 {rng.randint(900000, 999999)}",
    ])


def intl_phone() -> str:
    return rng.choice([
        f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} "
        f"{rng.randint(10, 99)}",
        f"+49 30 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
        f"+61 2 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
        f"+91 {rng.randint(90000, 99999)} {rng.randint(10000, 99999)}",
        f"+353 1 {rng.randint(200, 999)} {rng.randint(1000, 9999)}",
    ])


def ssn(valid: bool = True) -> str:
    if valid:
        return fake.ssn()
    return rng.choice([f"000-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
                       f"666-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
                       f"9{rng.randint(10, 99)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
                       f"{rng.randint(100, 599)}-00-{rng.randint(1000, 9999)}"])


def card(valid: bool = True) -> str:
    number = fake.credit_card_number(card_type=rng.choice(["visa", "mastercard", "amex",
                                                            "discover"]))
    if not valid:
        number = number[:-1] + str((int(number[-1]) + rng.randint(1, 9)) % 10)
    style = rng.random()
    if style < 0.4 and len(number) == 16:
        sep = rng.choice([" ", "-"])
        return sep.join(number[i:i + 4] for i in range(0, 16, 4))
    return number


def _check_mod11(nine: str) -> int | None:
    check = 11 - sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True)) % 11
    return 0 if check == 11 else (None if check == 10 else check)


def nhs_number() -> str:
    while True:
        nine = f"{rng.randint(400000000, 799999999)}"
        check = _check_mod11(nine)
        if check is not None:
            d = nine + str(check)
            return f"{d[:3]} {d[3:6]} {d[6:]}"


def nino() -> str:
    first = rng.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    while first + second in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}:
        second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    digits = "".join(rng.choice(string.digits) for _ in range(6))
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return f"{first}{second}{digits}{suffix}"


def npi() -> str:
    base = rng.choice("12") + "".join(rng.choice(string.digits) for _ in range(8))
    return base + luhn_check_digit("80840" + base)


def dea(last_name: str) -> str:
    d = [rng.randint(0, 9) for _ in range(6)]
    check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
    return rng.choice("ABFGMX") + last_name[0].upper() + "".join(map(str, d)) + str(check)


_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
_VIN_VAL = {**{str(i): i for i in range(10)}, "A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 6,
            "G": 7, "H": 8, "J": 1, "K": 2, "L": 3, "M": 4, "N": 5, "P": 7, "R": 9, "S": 2,
            "T": 3, "U": 4, "V": 5, "W": 6, "X": 7, "Y": 8, "Z": 9}
_VIN_W = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin() -> str:
    chars = [rng.choice("12345JKLSWYZ")] + [rng.choice(_VIN_CHARS) for _ in range(16)]
    chars[8] = "0"
    total = sum(_VIN_VAL[c] * w for c, w in zip(chars, _VIN_W, strict=True)) % 11
    chars[8] = "X" if total == 10 else str(total)
    return "".join(chars)


def plate() -> str:
    return rng.choice([f"{rng.randint(1, 9)}{''.join(rng.choices(string.ascii_uppercase, k=3))}"
                       f"{rng.randint(100, 999)}",
                       f"{''.join(rng.choices(string.ascii_uppercase, k=3))}-{rng.randint(1000, 9999)}",
                       fake_gb.license_plate().replace("•", " ")])


def mrn() -> str:
    return rng.choice([f"{rng.randint(1000000, 9999999)}", f"MR{rng.randint(100000, 999999)}",
                       f"{rng.randint(10000000, 99999999)}"])


def member_id() -> str:
    return rng.choice([
        f"{''.join(rng.choices(string.ascii_uppercase, k=3))}{rng.randint(100000000, 999999999)}",
        f"W{rng.randint(1000000000, 9999999999)}",
        f"{rng.randint(1, 9)}{''.join(rng.choices('ACDEFGHJKMNPQRTUVWXY', k=2))}"
        f"{rng.randint(0, 9)}-{''.join(rng.choices('ACDEFGHJKMNPQRTUVWXY', k=2))}"
        f"{rng.randint(0, 9)}-{''.join(rng.choices('ACDEFGHJKMNPQRTUVWXY', k=2))}"
        f"{rng.randint(10, 99)}",
    ])


def date_text(d) -> str:
    return rng.choice([d.strftime("%m/%d/%Y"), d.strftime("%B %-d, %Y"), d.isoformat(),
                       d.strftime("%-d %B %Y"), d.strftime("%b %-d, %Y"),
                       d.strftime("%-m/%-d/%Y")])


def recent_date() -> str:
    return date_text(fake.date_between(TODAY - timedelta(days=3 * 365), TODAY))


def dob() -> str:
    return date_text(fake.date_between(TODAY - timedelta(days=95 * 365), TODAY - timedelta(days=365)))


def icd10() -> str:
    return rng.choice(["E11.9", "I10", "J45.909", "M54.5", "F32.1", "N18.3", "K21.9", "E78.5",
                       "Z79.4", "I25.10", "J18.9", "R07.9", "S72.001A", "C50.911", "G43.909"])


def cpt() -> str:
    return rng.choice(["99213", "99214", "93000", "71046", "80053", "36415", "99285", "45378",
                       "29881", "0001F"])


def rand_chars(alphabet: str, k: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(k))


B64 = string.ascii_letters + string.digits + "+/"
B64URL = string.ascii_letters + string.digits + "-_"
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


def aws_key() -> str:
    return "AKIA" + rand_chars(string.ascii_uppercase + "234567", 16)


def jwt() -> str:
    def enc(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    header = enc({"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"})
    payload = enc({"sub": str(rng.randint(1000, 99999)), "name": fake.name(),
                   "iat": rng.randint(1600000000, 1700000000)})
    return f"{header}.{payload}.{rand_chars(B64URL, 43)}"


def pem() -> str:
    body = "\n".join(rand_chars(B64, 64) for _ in range(rng.randint(3, 6)))
    kind = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY",
                       "OPENSSH PRIVATE KEY"])
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


def password() -> str:
    return fake.password(length=rng.randint(10, 16))


def L(typ: str, value: str) -> tuple[str, str]:  # noqa: N802 - reads like a label in templates
    return (typ, value)


# ---------------------------------------------------------------------------------------------
# Documents


def patient_letter() -> dict:
    doctor, pat = person(), person()
    city, state, zipc = fake.city(), fake.state_abbr(include_territories=False), fake.zipcode()
    opening = rng.choice([
        "Thank you for attending the cardiology clinic on {visit}. I am writing to summarise "
        "our discussion and the plan we agreed.",
        "Following your appointment on {visit}, your blood test results are now available. "
        "Your HbA1c has improved and we will keep your metformin dose the same.",
        "We were unable to reach you by telephone after your scan on {visit}. Please call the "
        "clinic so we can book a follow-up appointment.",
    ])
    t = ("{clinic}\n{street}\n{city}, {state} {zip}\n\n{date}\n\nDear {t1} {name},\n\n" + opening +
         "\n\nFor our records: MRN {mrn}, date of birth {dob}. If any of these details are wrong, "
         "call us on {phone} or fax corrections to {fax}.\n\n"
         "You can also message the care team through {url}.\n\n"
         "Sincerely,\n{doctor}, MD\nDepartment of Internal Medicine")
    return render(t, clinic=fake.company() + " Medical Group", street=fake.street_address(),
                  city=city, state=state, zip=L("US_ZIP", zipc), date=L("DATE_TIME", recent_date()),
                  t1=rng.choice(["Mr.", "Ms.", "Mrs."]), name=L("PERSON", pat.split(" ")[-1]),
                  visit=L("DATE_TIME", recent_date()), mrn=L("MRN", mrn()),
                  dob=L("DATE_OF_BIRTH", dob()), phone=L("PHONE_NUMBER", us_phone()),
                  fax=L("FAX_NUMBER", us_phone().split(" ext")[0].split(" x")[0]),
                  url=L("URL", f"https://portal.{fake.domain_name()}/messages"),
                  doctor=L("PERSON", doctor))


def discharge_summary() -> dict:
    pat, doc = person(), person()
    age = rng.choice([rng.randint(20, 89), rng.randint(90, 104)])
    age_val: Value = L("AGE_OVER_89", str(age)) if age >= 90 else str(age)
    t = ("DISCHARGE SUMMARY\n\nPatient: {pat}\nMRN: {mrn}\nDOB: {dob}\nAdmitted: {adm}\n"
         "Discharged: {dis}\nAttending: Dr. {doc}\n\n"
         "HISTORY: {age}-year-old {sex} admitted with shortness of breath and chest pain. "
         "Troponin negative x2.\n\n"
         "Diagnoses: {icd1} (primary), {icd2}\nProcedures: CPT {cpt1}, {cpt2}\n\n"
         "Insurance: {payer}, member ID {member}\n"
         "Follow-up with PCP in 2 weeks. Contact the ward on {phone} with questions.")
    return render(t, pat=L("PERSON", pat), mrn=L("MRN", mrn()), dob=L("DATE_OF_BIRTH", dob()),
                  adm=L("DATE_TIME", recent_date()), dis=L("DATE_TIME", recent_date()),
                  doc=L("PERSON", doc), age=age_val, sex=rng.choice(["male", "female"]),
                  icd1=L("ICD10_CODE", icd10()), icd2=L("ICD10_CODE", icd10()),
                  cpt1=L("CPT_CODE", cpt()), cpt2=L("CPT_CODE", cpt()),
                  payer=rng.choice(["Aetna", "Blue Cross Blue Shield", "UnitedHealthcare",
                                    "Cigna", "Humana"]),
                  member=L("HEALTH_PLAN_ID", member_id()), phone=L("PHONE_NUMBER", us_phone()))


def memo() -> dict:
    a, b, c = person(), person(), person()
    t = rng.choice([
        "MEMORANDUM\n\nTo: {a}\nFrom: {b}\nDate: {date}\nRe: Q3 vendor onboarding\n\n"
        "Please send the signed contract to {email} before the end of the month. The vendor "
        "portal is at {url}. Invoice INV-{inv} for ${price} is approved. "
        "If you have questions, ring me on {phone}.\n\ncc: {c}",
        "To: {a}\nFrom: {b}\nSubject: Office move\n\nThe move is scheduled for {date}. Facilities "
        "will email {email} with the new seating plan; the floor map is on {url}. Order "
        "#{inv} covers the crates (${price}). My direct line is {phone}.\n\ncc: {c}",
    ])
    return render(t, a=L("PERSON", a), b=L("PERSON", b), c=L("PERSON", c),
                  date=L("DATE_TIME", recent_date()), email=L("EMAIL_ADDRESS", fake.email()),
                  url=L("URL", fake.url() + rng.choice(["", "vendors", "docs/onboarding"])),
                  inv=str(rng.randint(10000, 999999)), price=f"{rng.randint(100, 99999):,}.{rng.randint(0, 99):02d}",
                  phone=L("PHONE_NUMBER", us_phone()))


def env_config() -> dict:
    user = fake.user_name()
    db_pw = password().replace("@", "#").replace("/", "!").replace(":", "%")
    host = f"db-{rng.randint(1, 9)}.{fake.domain_word()}.internal"
    t = rng.choice([
        "# production settings, do not commit\nAPP_ENV=production\nREQUEST_ID_PREFIX={uuid}\n"
        "AWS_ACCESS_KEY_ID={akid}\nAWS_SECRET_ACCESS_KEY={aws_secret}\n"
        "DATABASE_URL=postgres://{user}:{dbpw}@{host}:5432/app\n"
        "GIT_SHA={sha}\nSTRIPE_SECRET_KEY={stripe}\nLOG_LEVEL=info\n",
        "services:\n  api:\n    image: registry.example.com/api@sha256:{sha256}\n"
        "    environment:\n      DB_PASSWORD: {pw}\n      SLACK_BOT_TOKEN: {slack}\n"
        "      GITHUB_TOKEN: {gh}\n      BUILD: \"{build}\"\n      INSTANCE_ID: {uuid}\n",
        "{{\n  \"name\": \"billing-worker\",\n  \"version\": \"2.{minor}.{patch}\",\n"
        "  \"commit\": \"{sha}\",\n  \"openai_api_key\": \"{openai}\",\n"
        "  \"db_password\": \"{pw}\",\n  \"webhook_signing_key\": \"{entropy}\"\n}}\n",
    ])
    return render(
        t, uuid=fake.uuid4(), akid=L("AWS_ACCESS_KEY", aws_key()),
        aws_secret=L("AWS_SECRET_KEY", rand_chars(B64, 40)), user=user,
        dbpw=L("DATABASE_URL", db_pw), host=host, sha=fake.sha1(), sha256=fake.sha256(),
        stripe=L("STRIPE_KEY", "sk_live_" + rand_chars(ALNUM, 24)),
        pw=L("PASSWORD", password()),
        slack=L("SLACK_TOKEN", f"xoxb-{rng.randint(10**11, 10**12 - 1)}-"
                               f"{rng.randint(10**12, 10**13 - 1)}-{rand_chars(ALNUM, 24)}"),
        gh=L("GITHUB_TOKEN", "ghp_" + rand_chars(ALNUM, 36)), build=f"{rng.randint(1000, 9999)}",
        minor=str(rng.randint(0, 30)), patch=str(rng.randint(0, 30)),
        openai=L("OPENAI_API_KEY", "sk-proj-" + rand_chars(ALNUM + "-_", 64)),
        entropy=L("HIGH_ENTROPY_STRING", rand_chars(B64URL, rng.randint(32, 48))))


def app_config() -> dict:
    t = rng.choice([
        "[gcp]\nproject = {proj}\napi_key = {gcp}\n\n[anthropic]\nkey = {ant}\n\n"
        "[session]\njwt_example = {jwt}\ncache_ttl = 3600\n",
        "# azure storage\nconnection_string = \"DefaultEndpointsProtocol=https;AccountName={acct};"
        "AccountKey={azure};EndpointSuffix=core.windows.net\"\n"
        "twilio_account_sid = {twsid}\ntwilio_auth_token = {twtok}\n"
        "slack_webhook = {hook}\n",
        "deploy:\n  gitlab_token: {glpat}\n  artifact_checksum: sha256:{sha256}\n"
        "  release_id: {uuid}\n  mongo: mongodb+srv://deploy:{mpw}@cluster0.{proj}.mongodb.net/prod\n",
    ])
    key = base64.b64encode(bytes(rng.randrange(256) for _ in range(64))).decode()
    return render(
        t, proj=fake.domain_word(), gcp=L("GCP_API_KEY", "AIza" + rand_chars(B64URL, 35)),
        ant=L("ANTHROPIC_API_KEY", "sk-ant-api03-" + rand_chars(B64URL, 93) + "AA"),
        jwt=L("JWT", jwt()), acct=fake.domain_word() + "store", azure=L("AZURE_STORAGE_KEY", key),
        twsid=L("TWILIO_SID", "AC" + rand_chars(HEX, 32)),
        twtok=L("TWILIO_AUTH_TOKEN", rand_chars(HEX, 32)),
        hook=L("SLACK_WEBHOOK", f"https://hooks.slack.com/services/T{rand_chars(string.ascii_uppercase + string.digits, 8)}"
                                f"/B{rand_chars(string.ascii_uppercase + string.digits, 10)}/{rand_chars(ALNUM, 24)}"),
        glpat=L("GITLAB_TOKEN", "glpat-" + rand_chars(ALNUM + "-_", 20)),
        sha256=fake.sha256(), uuid=fake.uuid4(), mpw=L("DATABASE_URL", rand_chars(ALNUM, 16)))


def key_files() -> dict:
    t = rng.choice([
        "Support ticket #{ticket}: customer pasted their deploy key by mistake.\n\n{pem}\n\n"
        "Action: key revoked on {date}; customer asked to rotate.",
        "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"{proj}\",\n"
        "  \"private_key_id\": \"{hexid}\",\n  \"private_key\": \"{sa}\",\n"
        "  \"client_email\": \"{sa_email}\"\n}}\n",
    ])
    sa = "-----BEGIN PRIVATE KEY-----\\n" + "\\n".join(rand_chars(B64, 64) for _ in range(4)) + \
        "\\n-----END PRIVATE KEY-----\\n"
    proj = fake.domain_word() + "-prod"
    return render(t, ticket=str(rng.randint(10000, 99999)), pem=L("PRIVATE_KEY", pem()),
                  date=L("DATE_TIME", recent_date()), proj=proj,
                  sa_email=L("EMAIL_ADDRESS", f"deployer@{proj}.iam.gserviceaccount.com"),
                  hexid=rand_chars(HEX, 40), sa=L("GCP_SERVICE_ACCOUNT_KEY", sa))


def release_notes() -> dict:
    t = ("Release {ver} ({date})\n\n"
         "- Fix crash when exporting reports (commit {sha1})\n"
         "- Bump base image to sha256:{sha256}\n"
         "- Migration {uuid} now idempotent\n"
         "- Docs: see {url} for upgrade steps\n"
         "Checksums: {sha256b}  clearance-{ver}.tar.gz\n"
         "Thanks to all 14 contributors. Build {build} passed 1,284 tests in 312.5 s.")
    return render(t, ver=f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
                  date=L("DATE_TIME", recent_date()), sha1=fake.sha1()[: rng.choice([7, 12, 40])],
                  sha256=fake.sha256(), sha256b=fake.sha256(), uuid=fake.uuid4(),
                  url=L("URL", f"https://docs.{fake.domain_name()}/upgrade"),
                  build=f"{rng.randint(2024, 2026)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}.{rng.randint(1, 9)}")


def invoice() -> dict:
    good = rng.random() < 0.6
    t = ("INVOICE {inv}\nBill to: {name}\n{street}, {city}, {state} {zip}\n"
         "Order #{order} placed {date}. Tracking 1Z{track}.\n"
         "Subtotal ${sub}  Tax ${tax}  Total ${total}\n"
         "Paid with card {card} (authorisation {auth}).\n"
         "Questions? billing@{domain} or {phone}.")
    return render(t, inv=f"INV-{rng.randint(2020, 2026)}-{rng.randint(1000, 99999)}",
                  name=L("PERSON", person()), street=fake.street_address(), city=fake.city(),
                  state=fake.state_abbr(include_territories=False), zip=L("US_ZIP", fake.zipcode()),
                  order=str(rng.randint(10**7, 10**9)), date=L("DATE_TIME", recent_date()),
                  track=rand_chars(string.ascii_uppercase + string.digits, 16),
                  sub=f"{rng.randint(10, 2000)}.{rng.randint(0, 99):02d}",
                  tax=f"{rng.randint(1, 200)}.{rng.randint(0, 99):02d}",
                  total=f"{rng.randint(10, 2200)}.{rng.randint(0, 99):02d}",
                  card=L("CREDIT_CARD", card()) if good else card(valid=False),
                  auth=str(rng.randint(100000, 999999)), domain=fake.domain_name(),
                  phone=L("PHONE_NUMBER", us_phone()))
    # the domain is written as an email address in the text
    return t


def fix_invoice_emails(doc: dict) -> dict:
    for m in re.finditer(r"billing@[\w.-]+\.[a-z]+", doc["text"]):
        doc["entities"].append({"type": "EMAIL_ADDRESS", "start": m.start(), "end": m.end()})
    return doc


def hr_record() -> dict:
    name = person()
    bad_ssn = rng.random() < 0.25
    t = ("EMPLOYEE RECORD (CONFIDENTIAL)\nName: {name}\nSSN: {ssn}\nDate of birth: {dob}\n"
         "Driver's license: {dl} ({state})\nPassport number: {pp}\nStart date: {start}\n"
         "Direct deposit: bank account {acct}, routing {aba}\nPersonal email: {email}\n"
         "Emergency contact: {ec}, {phone}\nEmployee number {emp}.")
    return render(t, name=L("PERSON", name), ssn=ssn(False) if bad_ssn else L("US_SSN", ssn()),
                  dob=L("DATE_OF_BIRTH", dob()),
                  dl=L("US_DRIVER_LICENSE", rng.choice([
                      f"{rng.choice(string.ascii_uppercase)}{rng.randint(1000000, 9999999)}",
                      f"{rng.randint(100000000, 999999999)}",
                      f"{rng.choice(string.ascii_uppercase)}{rng.randint(100, 999)}-"
                      f"{rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(100, 999)}-"
                      f"{rng.randint(0, 9)}"])),
                  state=fake.state_abbr(include_territories=False),
                  pp=L("US_PASSPORT", fake.passport_number()), start=L("DATE_TIME", recent_date()),
                  acct=L("US_BANK_NUMBER", str(rng.randint(10**9, 10**12))),
                  aba=L("ABA_ROUTING_NUMBER", fake.aba()), email=L("EMAIL_ADDRESS", fake.email()),
                  ec=L("PERSON", person()), phone=L("PHONE_NUMBER", us_phone()),
                  emp=str(rng.randint(1000, 99999)))


def uk_referral() -> dict:
    gp, pat = person(), person()
    t = ("Dear {t} {gp},\n\nRe: {pat}, NHS number {nhs}, National Insurance number {nino}\n\n"
         "I saw this patient in the respiratory clinic on {date}. Spirometry was normal. "
         "I have not arranged a further appointment. The patient can be reached on {mob} and "
         "the practice on {tel}. Please do not hesitate to contact my secretary on {intl} if "
         "you need anything further.\n\nKind regards,\n{cons}\nConsultant Respiratory Physician")
    return render(t, t=rng.choice(["Dr", "Dr."]), gp=L("PERSON", gp), pat=L("PERSON", pat),
                  nhs=L("UK_NHS", nhs_number()), nino=L("UK_NINO", nino()),
                  date=L("DATE_TIME", recent_date()), mob=L("PHONE_NUMBER", uk_phone()),
                  tel=L("PHONE_NUMBER", uk_phone()), intl=L("PHONE_NUMBER", intl_phone()),
                  cons=L("PERSON", person()))


def claim() -> dict:
    t = ("AUTO CLAIM {claim}\nPolicyholder: {name}\nPolicy number: {policy}\n"
         "Vehicle: {year} {make}, VIN {vin}, license plate {plate}\nIncident date: {date}\n"
         "Driver license number: {dl}\nDashcam serial number: {serial}\n"
         "Description: rear-ended at a junction; no injuries reported. Repair estimate ${est}.\n"
         "IBAN for settlement: {iban}")
    iban = fake_gb.iban()
    iban_txt = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.5 \
        else iban
    return render(t, claim=f"CLM-{rng.randint(100000, 999999)}", name=L("PERSON", person()),
                  policy=L("HEALTH_PLAN_ID", f"{''.join(rng.choices(string.ascii_uppercase, k=2))}"
                                             f"{rng.randint(10000000, 99999999)}"),
                  year=str(rng.randint(2008, 2025)),
                  make=rng.choice(["Toyota Corolla", "Ford F-150", "Honda Civic", "Tesla Model 3"]),
                  vin=L("VEHICLE_ID", vin()), plate=L("VEHICLE_ID", plate()),
                  date=L("DATE_TIME", recent_date()),
                  dl=L("US_DRIVER_LICENSE", f"{rng.choice(string.ascii_uppercase)}{rng.randint(1000000, 99999999)}"),
                  serial=L("DEVICE_ID", f"{rand_chars(string.ascii_uppercase, 2)}{rng.randint(100000, 9999999)}"),
                  est=f"{rng.randint(300, 9000):,}", iban=L("IBAN_CODE", iban_txt))


def device_log() -> dict:
    t = ("{ts} INFO  session opened from {ip4} (user {user})\n"
         "{ts2} WARN  implant telemetry: pacemaker serial {serial}, MAC {mac}\n"
         "{ts3} INFO  request {uuid} from {ip6} took 231 ms\n"
         "{ts3} DEBUG build {sha} version 4.{minor}.2\n")
    mac = ":".join(f"{rng.randrange(256):02X}" for _ in range(6))
    return render(t, ts=L("DATE_TIME", fake.date_time_between(NOW - timedelta(days=365), NOW).strftime("%Y-%m-%d %H:%M:%S")),
                  ts2=L("DATE_TIME", fake.date_time_between(NOW - timedelta(days=365), NOW).strftime("%Y-%m-%d %H:%M:%S")),
                  ts3=L("DATE_TIME", fake.date_time_between(NOW - timedelta(days=365), NOW).strftime("%Y-%m-%d %H:%M:%S")),
                  ip4=L("IP_ADDRESS", fake.ipv4_public()), user=fake.user_name(),
                  serial=L("DEVICE_ID", f"PM{rng.randint(100000, 999999)}{rand_chars(string.ascii_uppercase, 2)}"),
                  mac=L("DEVICE_ID", mac), uuid=fake.uuid4(), ip6=L("IP_ADDRESS", fake.ipv6()),
                  sha=fake.sha1(), minor=str(rng.randint(0, 20)))


def prescription() -> dict:
    prescriber = person()
    t = ("PRESCRIPTION\nPrescriber: Dr. {pr}\nNPI: {npi}  DEA: {dea}\nMedical license no. {lic}\n"
         "Patient name: {pat}  DOB: {dob}\nRx: atorvastatin 20 mg, one tablet nightly, #90, "
         "refills 3.\nPharmacy fax: {fax}\nSigned {date}")
    return render(t, pr=L("PERSON", prescriber), npi=L("NPI", npi()),
                  dea=L("DEA_NUMBER", dea(prescriber.split(" ")[-1])),
                  lic=L("MEDICAL_LICENSE", f"{rng.choice(['MD', 'A', 'G', 'DO'])}{rng.randint(10000, 999999)}"),
                  pat=L("PERSON", person()), dob=L("DATE_OF_BIRTH", dob()),
                  fax=L("FAX_NUMBER", us_phone().split(" ext")[0].split(" x")[0]),
                  date=L("DATE_TIME", recent_date()))


def research_extract() -> dict:
    """A 'de-identified' extract that leaks: elderly ages, a ZIP, an account number."""
    age = rng.randint(90, 103)
    young = rng.randint(30, 80)
    t = ("Case {case}: {age}-year-old woman from {city}, {state} {zip}, admitted in {year} "
         "with sepsis. Comparison subject: age {young}. Billing account number {acct} was "
         "included in the source export and must be removed. Lab panel 80053 repeated daily; "
         "cohort size 1,204; p = 0.031.")
    return render(t, case=str(rng.randint(1, 400)), age=L("AGE_OVER_89", str(age)),
                  city=fake.city(), state=fake.state_abbr(include_territories=False),
                  zip=L("US_ZIP", fake.zipcode()), year=str(rng.randint(2010, 2024)),
                  young=str(young), acct=L("ACCOUNT_NUMBER", str(rng.randint(10**7, 10**10))))


def prose_names() -> dict:
    """Names in running prose without any cue: context-based detection is expected to miss
    these, and they are labelled so the miss shows in recall."""
    t = rng.choice([
        "Yesterday {a} and {b} reviewed the audit findings and agreed to close item 4 by "
        "Friday.",
        "The committee thanked {a} for chairing the session; {b} will take the minutes next "
        "time.",
        "According to {a}, the shipment of 250 units arrived two days late.",
    ])
    return render(t, a=L("PERSON", person()), b=L("PERSON", person()))


def negatives() -> dict:
    """Numbers that look like identifiers and are not: nothing here is labelled."""
    t = rng.choice([
        "Order {order} shipped in 3 boxes. Reference {uuid}. Price ${price}, tax 8.25%. "
        "Card on file ending {last4}; the card number {badcard} was declined as invalid.",
        "Ticket {ticket} was duplicated by ticket {ticket2}; see commit {sha} and artifact "
        "digest {sha256}. The test SSN 000-12-3456 and {badssn} are rejected by the form.",
        "Version {ver} of the SDK ships 1,024 fixtures; build {build} finished in 12:04. "
        "Meet in room 4.12 at 10 am. The team of 14 met 37 times in 2023.",
        "Our support line takes calls 8am-6pm. In 1998 the company had 65 staff; now 2,400. "
        "The 10-K filing lists revenue of $12,345,678 and 90 offices in 12 countries.",
    ])
    return render(t, order=f"#{rng.randint(10**6, 10**8)}", uuid=fake.uuid4(),
                  price=f"{rng.randint(5, 500)}.{rng.randint(0, 99):02d}",
                  last4=f"{rng.randint(0, 9999):04d}", badcard=card(valid=False),
                  ticket=f"OPS-{rng.randint(100, 9999)}", ticket2=f"OPS-{rng.randint(100, 9999)}",
                  sha=fake.sha1(), sha256=fake.sha256(), badssn=ssn(valid=False),
                  ver=f"{rng.randint(1, 5)}.{rng.randint(0, 30)}.{rng.randint(0, 30)}",
                  build=str(rng.randint(10000, 99999)))


def nursing_note() -> dict:
    """Free-text clinical shorthand, written without looking at the detectors."""
    age = rng.randint(60, 101)
    age_val: Value = L("AGE_OVER_89", str(age)) if age >= 90 else str(age)
    t = rng.choice([
        "0700 Pt is a {age} y/o F, alert and oriented x3. Daughter {fam} at bedside, can be "
        "reached at {phone}. Pt reports pain 4/10. MRN# {mrn}. Dr. {doc} notified of BP "
        "168/94 at 0730.",
        "Nursing note {date}: {age} yo male, hx CHF, COPD. Wife ({fam}) asked for update; "
        "called her cell {phone}. Chart number {mrn}. Plan per {doc}, NP.",
    ])
    return render(t, age=age_val, fam=L("PERSON", person()), phone=L("PHONE_NUMBER", us_phone()),
                  mrn=L("MRN", mrn()), doc=L("PERSON", person()), date=L("DATE_TIME", recent_date()))


def email_thread() -> dict:
    a, b = person(), person()
    t = rng.choice([
        "From: {a} <{ea}>\nSent: {date}\nTo: {b} <{eb}>\nSubject: RE: intake paperwork\n\n"
        "Hi {bfirst},\n\nAttached is the signed form. My cell is {phone} if anything is missing."
        "\n\nThanks,\n{afirst}\n\n-- \n{a} | Office Manager | {company}\n{phone2}",
        "On {date}, {b} <{eb}> wrote:\n> Can you resend the invoice?\n\nSure, sent again to "
        "{eb2}. Our portal is {url} if you prefer to download it.\n\nBest,\n{a}",
    ])
    return render(t, a=L("PERSON", a), b=L("PERSON", b), ea=L("EMAIL_ADDRESS", fake.email()),
                  eb=L("EMAIL_ADDRESS", fake.email()), eb2=L("EMAIL_ADDRESS", fake.email()),
                  date=L("DATE_TIME", recent_date()), bfirst=L("PERSON", b.split(" ")[0]),
                  afirst=L("PERSON", a.split(" ")[0]), phone=L("PHONE_NUMBER", us_phone()),
                  phone2=L("PHONE_NUMBER", us_phone()), company=fake.company(),
                  url=L("URL", fake.url()))


def intake_form() -> dict:
    state = fake.state()
    t = ("NEW PATIENT INTAKE\nLast name: {last}    First name: {first}\nD.O.B. {dob}    "
         "SS# {ssn}\nAddress: {street}, {city}, {state} {zip}\nPh: {phone}    "
         "Alt ph: {phone2}\nInsurance carrier: {payer}   Subscriber ID: {member}\n"
         "Referring provider: {ref}, NPI {npi}\nReason for visit: follow-up of {icd_text}")
    return render(t, last=L("PERSON", fake.last_name()), first=L("PERSON", fake.first_name()),
                  dob=L("DATE_OF_BIRTH", dob()), ssn=L("US_SSN", fake.ssn()),
                  street=fake.street_address(), city=fake.city(), state=state,
                  zip=L("US_ZIP", fake.zipcode()), phone=L("PHONE_NUMBER", us_phone()),
                  phone2=L("PHONE_NUMBER", us_phone()), payer=rng.choice(["Aetna", "Cigna"]),
                  member=L("HEALTH_PLAN_ID", member_id()), ref=L("PERSON", person()),
                  npi=L("NPI", npi()), icd_text=rng.choice(["hypertension", "type 2 diabetes"]))


def chat_transcript() -> dict:
    t = rng.choice([
        "[{ts}] agent: Thanks for waiting! Can you confirm the card you used?\n"
        "[{ts}] customer: sure it's {card}, exp 08/27\n"
        "[{ts}] agent: Got it. I've sent a reset link to {email}.\n"
        "[{ts}] customer: also my IP changed to {ip}, is that why it locked?",
        "[{ts}] customer: hi, I'm locked out. my username is {user}\n"
        "[{ts}] agent: I can help. Is {phone} still the best number?\n"
        "[{ts}] customer: yes. and my password is {pw} if that helps\n"
        "[{ts}] agent: Please never share your password; I've flagged this chat for deletion.",
    ])
    return render(t, ts=fake.date_time_between(NOW - timedelta(days=1), NOW).strftime("%H:%M"), card=L("CREDIT_CARD", card()),
                  email=L("EMAIL_ADDRESS", fake.email()), ip=L("IP_ADDRESS", fake.ipv4_public()),
                  user=fake.user_name(), phone=L("PHONE_NUMBER", us_phone()),
                  pw=L("PASSWORD", password()))


def boilerplate() -> dict:
    """Greetings and sign-offs addressed to teams and roles, not people: nothing labelled."""
    t = rng.choice([
        "Dear Valued Customer,\n\nYour statement for {month} is ready. Log in to view it.\n\n"
        "Kind regards,\nCustomer Success\n{company}",
        "Hello World Health Partners,\n\nPlease find our Q{q} report attached.\n\nThanks,\n"
        "Human Resources",
        "Hi Team,\n\nThe Annual Compliance Review starts {weekday}. Bring your laptop.\n\n"
        "Best,\nFacilities Management",
        "Subject: Patient Portal upgrade\nTo: All Staff\n\nThe Electronic Health Record will be "
        "offline on Sunday night. Contact Information Services with questions.\n\n"
        "Regards,\nClinical Informatics",
    ])
    return render(t, month=rng.choice(["March", "April", "May"]), company=fake.company(),
                  q=str(rng.randint(1, 4)), weekday=rng.choice(["Monday", "Tuesday"]))


def credentialing() -> dict:
    """A contractor / staff credentialing record: licences and a biometric enrolment."""
    t = rng.choice([
        "CREDENTIALING FILE\nApplicant: {name}\nState contractor license number {lic}, expires "
        "{date}.\nBadge access: fingerprint template ID {bio} enrolled at the east entrance.\n"
        "Background check reference {ref} cleared.",
        "Vendor onboarding for {company}. Contact: {name}. Business license no. {lic}. "
        "Site access uses a biometric ID ({bio}); the badge itself carries no number. "
        "Safety training completed on {date}.",
    ])
    return render(t, name=L("PERSON", person()),
                  lic=L("LICENSE_NUMBER", f"{rng.choice(['', 'C-', 'BL'])}{rng.randint(10000, 9999999)}"),
                  date=L("DATE_TIME", recent_date()),
                  bio=L("BIOMETRIC_ID", f"{rng.choice(['FPT', 'BIO', 'IRS'])}-{rng.randint(10000, 99999)}"
                                        f"-{rng.choice(string.ascii_uppercase)}"),
                  ref=f"BG{rng.randint(100000, 999999)}", company=fake.company())


KINDS: list[tuple[Callable[[], dict], int]] = [
    (patient_letter, 30), (discharge_summary, 30), (memo, 25), (env_config, 30),
    (app_config, 25), (key_files, 15), (release_notes, 20), (invoice, 25), (hr_record, 25),
    (uk_referral, 20), (claim, 20), (device_log, 20), (prescription, 20), (research_extract, 15),
    (prose_names, 10), (negatives, 30), (nursing_note, 20), (email_thread, 20),
    (intake_form, 20), (chat_transcript, 20), (boilerplate, 20),
    (credentialing, 20),
]


def main() -> int:
    docs: list[dict] = []
    for make, count in KINDS:
        for _ in range(count):
            doc = make()
            if make is invoice:
                doc = fix_invoice_emails(doc)
            doc["kind"] = make.__name__
            doc["entities"].sort(key=lambda e: e["start"])
            docs.append(doc)
    rng.shuffle(docs)
    with OUT.open("w", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(json.dumps({"kind": doc["kind"], "text": doc["text"],
                                 "entities": doc["entities"]}, ensure_ascii=False) + "\n")
    print(f"wrote {len(docs)} documents, {sum(len(d['entities']) for d in docs)} entities "
          f"to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

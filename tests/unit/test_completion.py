"""Completion records (pure parts): the course setting, the rule, the record, the certificate as HTML and PDF, the
Open Badges 3.0 credential and the check of a record someone shows; the signing key and the store. The service's
HTTP boundary: tests/unit/test_progress.py; through the real hub: tests/integration/test_progress.py."""
from __future__ import annotations

import base64
import io
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from aifw.courses.catalogue import CourseFileError, load_course
from aifw.courses.completion_setting import CompletionSetting
from aifw.courses.publish import catalogue_entry
from aifw.hub_config import completion as c
from aifw.hub_config.completion_render import certificate_html, certificate_pdf, status_html, verify_html
from aifw.hub_config.progress import Score
from aifw.hub_config.progress_store import ProgressStore

COURSES = Path(__file__).resolve().parents[2] / "courses"
BASE = "https://hub.example.org/services/aifw-progress/"
ISSUED = datetime(2026, 5, 4, 12, 30, 0, tzinfo=timezone.utc)
SETTING = {"graded_percent": 80, "issuer": {"name": "Example AI Factory", "url": "https://aif.example.org",
                                            "country": "Luxembourg"},
           "learning_outcomes": ["Train a model on a GPU", "Explain a <b>Slurm</b> job"],
           "assessment": "Autograded notebooks", "participation": "online",
           "quality_assurance": "Every exercise proven before release"}


def _key() -> bytes:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


KEY, OTHER_KEY = _key(), _key()


def published(**setting) -> c.PublishedCourse:
    return c.PublishedCourse.model_validate({
        "id": "c", "title": "The <course>", "summary": "What it is.",
        "modules": [{"id": "m1", "title": "One", "minutes": 45}, {"id": "m2", "title": "Two", "minutes": 60},
                    {"id": "m3", "title": "Three", "minutes": 75}],
        "completion": {**SETTING, **setting}})


def scores(**percent: float) -> dict[str, Score]:
    return {m: Score(score=p, maximum=100) for m, p in percent.items()}


def a_record(**setting) -> c.CompletionRecord:
    course = published(**setting)
    held = c.standing("c", course, scores(m1=80, m2=95.5, m3=100))
    return c.build_record(course, "ada", held, verification_id="K7QD-2M4X-PA6Z-T3NB", issued=ISSUED, base_url=BASE)


# --------------------------------------------------------------------------- the rule
@pytest.mark.parametrize("setting, got, holds, missing", [
    ({}, dict(m1=80, m2=90, m3=100), True, []),                                   # exactly the threshold counts
    ({}, dict(m1=79.99, m2=90, m3=100), False, ["One (m1): graded 79.9%; 80% are needed"]),
    ({}, dict(m1=100, m3=100), False, ["Two (m2): not graded yet; 80% of its points are needed"]),
    ({}, {}, False, ["One (m1): not graded", "Two (m2): not graded", "Three (m3): not graded"]),
    ({"graded_percent": 50}, dict(m1=50, m2=60, m3=55), True, []),               # the threshold is the setting
    ({"modules": ["m1", "m3"]}, dict(m1=90, m3=90), True, []),                   # only the counted modules
    ({"modules": ["m1", "m3"]}, dict(m1=90, m2=100, m3=10), False, ["Three (m3): graded 10%"]),
])
def test_the_rule_holds_when_every_counted_module_is_graded_at_the_threshold(setting, got, holds, missing):
    held = c.standing("c", published(**setting), scores(**got))
    assert held.offered and held.holds is holds
    assert len(held.missing()) == len(missing)
    for line, words in zip(held.missing(), missing):
        assert line.startswith(words), line


def test_seven_of_ten_points_is_seventy_percent_not_a_rounding_accident():
    held = c.standing("c", published(graded_percent=70), {m: Score(score=7, maximum=10) for m in ("m1", "m2", "m3")})
    assert held.holds


def test_a_course_without_a_completion_section_issues_no_record():
    course = published().model_copy(update={"completion": None})
    held = c.standing("c", course, scores(m1=100, m2=100, m3=100))
    assert not held.offered and not held.holds
    assert held.missing() == ["this course issues no completion record (its course.yaml has no completion section)"]
    assert not c.standing("c", None, {}).offered  # not published at all
    with pytest.raises(ValueError, match="does not hold"):
        c.build_record(course, "ada", held, verification_id="K7QD-2M4X-PA6Z-T3NB", issued=ISSUED, base_url=BASE)


# --------------------------------------------------------------------------- the course setting
def _course_folder(tmp_path: Path, completion) -> Path:
    folder = tmp_path / "demo"
    folder.mkdir()
    data = {"id": "demo", "title": "Demo", "summary": "A demo.", "modules": [
        {"id": "m1-intro", "title": "Intro", "goals": ["g"], "minutes": 30, "partition": "cpu", "gpus": 0,
         "notebooks": ["01-a.ipynb"]},
        {"id": "m2-more", "title": "More", "goals": ["g"], "minutes": 45, "partition": "cpu", "gpus": 0,
         "notebooks": ["01-b.ipynb"]}]}
    if completion is not None:
        data["completion"] = completion
    (folder / "course.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


@pytest.mark.parametrize("change, key, words", [
    ({"graded_percent": 120}, "completion.graded_percent", "100"),
    ({"graded_percent": 0}, "completion.graded_percent", "> 0"),
    ({"participation": "remote"}, "completion.participation", "online"),
    ({"eqf_level": 9}, "completion.eqf_level", "8"),
    ({"issuer": {"name": "X", "url": "javascript:alert(1)"}}, "completion.issuer.url", "expected a URL like https://"),
    ({"issuer": {"name": "X", "url": "http://aif.example.org"}}, "completion.issuer.url", "expected an https://"),
    ({"learning_outcomes": []}, "completion.learning_outcomes", "at least 1 item"),
    ({"grade": 80}, "completion.grade", "unknown key"),
    ({"modules": ["m1-intro", "m1-intro"]}, "completion.modules", "must be unique"),
    ({"modules": ["m9-nope"]}, "", "completion.modules names m9-nope, which the course does not have"),
])
def test_a_wrong_completion_section_names_the_key_and_what_to_write(tmp_path, change, key, words):
    folder = _course_folder(tmp_path, {**SETTING, **change})
    with pytest.raises(CourseFileError) as err:
        load_course(folder)
    message = str(err.value)
    assert str(folder / "course.yaml") in message and words in message, message
    if key:
        assert f"key '{key}'" in message, message


def test_a_missing_micro_credential_field_is_named(tmp_path):
    setting = dict(SETTING)
    del setting["assessment"]
    with pytest.raises(CourseFileError, match=r"key 'completion.assessment'.*required but missing"):
        load_course(_course_folder(tmp_path, setting))


def test_the_workload_is_the_modules_minutes_unless_the_course_says_otherwise(tmp_path):
    course = load_course(_course_folder(tmp_path, SETTING))
    assert course.completion.workload({"m1-intro": 30, "m2-more": 45}) == 1.2  # 75 minutes, in hours
    assert CompletionSetting.model_validate({**SETTING, "workload_hours": 10}).workload({"m1-intro": 30}) == 10
    assert CompletionSetting.model_validate({**SETTING, "modules": ["m2-more"]}).workload(
        {"m1-intro": 30, "m2-more": 45}) == 0.8
    (tmp_path / "none").mkdir()
    assert load_course(_course_folder(tmp_path / "none", None)).completion is None


def test_the_foundations_course_fields_flow_from_course_yaml_into_the_record_and_the_credential():
    course = load_course(COURSES / "aif-foundations")
    entry = json.loads(json.dumps(catalogue_entry(course)))  # as the share holds it
    pub = c.PublishedCourse.model_validate(entry)
    assert pub.completion == course.completion and pub.completion.graded_percent == 80
    held = c.standing(pub.id, pub, {m.id: Score(score=8, maximum=10) for m in pub.modules})
    record = c.build_record(pub, "ada", held, verification_id="K7QD-2M4X-PA6Z-T3NB", issued=ISSUED, base_url=BASE)
    assert record.workload_hours == round(sum(m.minutes for m in course.modules) / 60, 1)
    assert [m.id for m in record.modules] == [m.id for m in course.modules]
    narrative = c.credential(record)["credentialSubject"]["achievement"]["criteria"]["narrative"]
    for outcome in course.completion.learning_outcomes:
        assert f"- {outcome}" in narrative
    assert course.completion.assessment in narrative and course.completion.quality_assurance in narrative
    assert "Form of participation: online." in narrative


def test_the_published_entry_is_read_as_untrusted_input(tmp_path):
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match="does not exist: publish the course"):
        c.read_published(tmp_path, "c")
    entry = {"id": "c", "title": "T", "modules": [{"id": "m1", "minutes": 5}], "completion": {**SETTING, "x": 1}}
    (tmp_path / "c" / c.CATALOGUE).write_text(json.dumps(entry))
    with pytest.raises(ValueError, match="completion.x: Extra inputs are not permitted"):
        c.read_published(tmp_path, "c")
    (tmp_path / "c" / c.CATALOGUE).write_text(json.dumps({**entry, "id": "d", "completion": SETTING}))
    with pytest.raises(ValueError, match="the entry of course 'd'"):
        c.read_published(tmp_path, "c")
    (tmp_path / "c" / c.CATALOGUE).write_text(json.dumps({**entry, "completion": SETTING, "extra": "ok"}))
    assert c.read_published(tmp_path, "c").completion.issuer.name == "Example AI Factory"


# --------------------------------------------------------------------------- the record
def test_the_record_names_learner_course_modules_hours_date_issuer_and_verification_id():
    record = a_record()
    assert (record.learner, record.course, record.course_title) == ("ada", "c", "The <course>")
    assert [(m.id, m.minutes, m.percent) for m in record.modules] == [("m1", 45, 80), ("m2", 60, 95.5), ("m3", 75, 100)]
    assert record.workload_hours == 3.0 and record.issued_text == "2026-05-04T12:30:00Z"
    assert record.setting.issuer.name == "Example AI Factory"
    assert record.verify_url == BASE + "verify?record=K7QD-2M4X-PA6Z-T3NB"
    assert c.CompletionRecord.model_validate_json(record.model_dump_json()) == record  # what the store keeps
    ids = {c.new_verification_id() for _ in range(50)}
    assert len(ids) == 50 and all(c.normal_id(i) == i for i in ids)


def test_the_certificate_html_holds_every_field_escaped():
    page = certificate_html(a_record(eqf_level=5, ects_credits=2, supervision="Proctored online"))
    for text in ("ada", "The &lt;course&gt;", "4 May 2026", "Example AI Factory", "Luxembourg", "K7QD-2M4X-PA6Z-T3NB",
                 "One", "0.75", "95.5%", "Explain a &lt;b&gt;Slurm&lt;/b&gt; job", "Autograded notebooks", "online",
                 "Every exercise proven before release", "3 hours", "2 ECTS credits", "EQF level 5",
                 "Proctored online", BASE + "verify?record=K7QD-2M4X-PA6Z-T3NB", "?format=pdf", "?format=jwt",
                 "prefers-color-scheme: dark", "@media print"):
        assert text in page, text
    assert "<course>" not in page and "<b>Slurm" not in page
    assert "EQF level" not in certificate_html(a_record())  # a field the course does not set is not shown


def test_the_certificate_pdf_is_a_pdf_with_the_learners_name_and_the_same_bytes_each_time():
    pypdf = pytest.importorskip("pypdf")
    record = a_record()
    pdf = certificate_pdf(record)
    assert pdf.startswith(b"%PDF-") and certificate_pdf(record) == pdf
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    for words in ("Certificate of completion", "ada", "The <course>", "4 May 2026", "Example AI Factory",
                  "K7QD-2M4X-PA6Z-T3NB", "Train a model on a GPU", "Autograded notebooks"):
        assert words in text, words
    assert reader.metadata.title == "The <course>: completion record of ada"


# --------------------------------------------------------------------------- the credential
def _parts(token: str) -> tuple[dict, dict]:
    def part(i):
        raw = token.split(".")[i]
        return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    return part(0), part(1)


def _reencode(header: dict, payload: dict, signature: str) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc(header)}.{enc(payload)}.{signature}"


def test_the_credential_is_an_open_badges_3_credential_that_verifies_with_the_public_key():
    record = a_record(eqf_level=5, ects_credits=2)
    token = c.sign(record, KEY)
    header, payload = _parts(token)
    jwk = c.public_jwk(KEY)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": BASE + "keys/" + c.thumbprint(jwk)}
    # any JOSE library verifies it with the public key alone
    claims = jwt.decode(token, jwt.PyJWK({**jwk, "alg": "RS256"}).key, algorithms=["RS256"])
    assert claims["@context"] == ["https://www.w3.org/ns/credentials/v2",
                                  "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"]
    assert claims["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert claims["issuer"] == {"id": BASE + "issuers/c", "type": ["Profile"], "name": "Example AI Factory",
                                "url": "https://aif.example.org",
                                "address": {"type": ["Address"], "addressCountry": "Luxembourg"}}
    subject = claims["credentialSubject"]
    assert subject["type"] == ["AchievementSubject"] and subject["id"].startswith("urn:uuid:")
    assert subject["identifier"] == [{"type": "IdentityObject", "identityType": "name", "hashed": False,
                                      "identityHash": "ada"}]
    achievement = subject["achievement"]
    assert achievement["type"] == ["Achievement"] and achievement["name"] == "The <course>"
    assert achievement["creditsAvailable"] == 2 and achievement["alignment"][0]["targetName"] == "EQF level 5"
    assert {"id", "criteria", "description", "name"} <= set(achievement)
    assert [e["name"] for e in claims["evidence"]] == ["One", "Two", "Three"]
    # OB 3.0 §8.2: the JWT claims mirror the credential
    assert (claims["iss"], claims["jti"], claims["sub"]) == (claims["issuer"]["id"], claims["id"], subject["id"])
    assert claims["nbf"] == int(ISSUED.timestamp()) and claims["validFrom"] == "2026-05-04T12:30:00Z"
    assert claims["id"] == record.verify_url and c.sign(record, KEY) == token  # the same record, the same token
    assert "d" not in jwk and set(jwk) == {"kty", "n", "e"}


def _checker(record: c.CompletionRecord, token: str):
    stored = c.StoredRecord(record=record, token=token)
    return c.verifying_keys([c.public_jwk(KEY)]), (lambda vid: stored if vid == record.verification_id else None)


def test_a_genuine_record_is_valid_by_its_credential_and_by_its_verification_id():
    record = a_record()
    token = c.sign(record, KEY)
    keys, lookup = _checker(record, token)
    for shown in (token, f"  {token}\n", record.verification_id, "k7qd 2m4x pa6z t3nb"):
        verdict = c.check(shown, keys, lookup)
        assert verdict.valid and verdict.record == record, (shown, verdict.message)
        assert "issued to ada for the course The <course> (c) on 4 May 2026 by Example AI Factory" in verdict.message
    assert c.check(token, keys, lookup).summary()["learner"] == "ada"


def test_an_altered_forged_foreign_or_unknown_record_is_refused_saying_why():
    record = a_record()
    token = c.sign(record, KEY)
    keys, lookup = _checker(record, token)
    header, payload = _parts(token)
    signature = token.split(".")[2]
    altered_name = _reencode(header, {**payload, "credentialSubject": {
        **payload["credentialSubject"], "identifier": [{**payload["credentialSubject"]["identifier"][0],
                                                        "identityHash": "mallory"}]}}, signature)
    altered_grade = _reencode(header, {**payload, "name": "Something else"}, signature)
    foreign = c.sign(record, OTHER_KEY)  # the same record signed by someone else's key, naming theirs
    forged = _reencode({**header, "kid": header["kid"]}, payload, foreign.split(".")[2])  # our kid, their signature
    other = a_record().model_copy(update={"verification_id": "AAAA-BBBB-CCCC-DDDD"})
    not_on_file = c.sign(other, KEY)
    unsigned = _reencode({"alg": "none", "typ": "JWT"}, payload, "")
    cases = {
        altered_name: "the signature does not match",
        altered_grade: "the signature does not match",
        foreign: "not signed with this issuer's key",
        forged: "the signature does not match",
        unsigned: "not signed with this issuer's key",
        not_on_file: "no such record is on file here",
        "AAAA-BBBB-CCCC-DDDD": "no record with the verification id AAAA-BBBB-CCCC-DDDD",
        "hello": "neither a verification id nor a credential",
        "": "Paste a record",
        "x" * (c.MAX_RECORD_CHARS + 1): "longer than",
    }
    for shown, words in cases.items():
        verdict = c.check(shown, keys, lookup)
        assert not verdict.valid and verdict.record is None, shown[:40]
        assert words in verdict.message, (shown[:40], verdict.message)
    # a credential whose claims disagree with its content, although signed (by us, by mistake)
    bad = jwt.encode({**payload, "sub": "urn:uuid:someone-else"}, KEY, algorithm="RS256", headers={"kid": header["kid"]})
    assert "disagree with its content" in c.check(bad, keys, lookup).message


def test_the_pages_without_a_record_say_what_is_missing_and_the_verify_page_escapes_what_was_pasted():
    held = c.standing("c", published(), scores(m1=50))
    page = status_html("The <course>", held, "No completion record yet: still missing:")
    assert "One (m1): graded 50%; 80% are needed" in page and "Two (m2): not graded yet" in page
    assert "The &lt;course&gt;" in page
    verdict = c.check("<script>", {}, lambda v: None)
    page = verify_html(verdict, "<script>", "/services/aifw-progress/verify", "/services/aifw-progress/.well-known/jwks.json")
    assert "&lt;script&gt;" in page and "<script>" not in page and 'data-valid="false"' in page


# --------------------------------------------------------------------------- the key and the store
def test_the_signing_key_is_made_once_private_and_refused_when_others_may_read_it(tmp_path):
    from aifw.hub_config.completion_service import KEY_FILE, completion_settings, load_or_make_key

    pem = load_or_make_key(tmp_path)
    assert oct((tmp_path / KEY_FILE).stat().st_mode & 0o777) == "0o600"
    assert load_or_make_key(tmp_path) == pem  # created once
    settings = completion_settings(tmp_path, "http://hub.example.org:8000/", "/services/aifw-progress/")
    assert settings["completion_base_url"] == "http://hub.example.org:8000/services/aifw-progress/"
    (jwk,) = settings["completion_jwks"]["keys"]
    assert jwk["kid"] == settings["completion_base_url"] + "keys/" + c.thumbprint(jwk) and "d" not in jwk
    record = a_record().model_copy(update={"base_url": settings["completion_base_url"]})
    assert jwt.get_unverified_header(c.sign(record, pem))["kid"] == jwk["kid"]  # a JWKS client finds it by kid
    os.chmod(tmp_path / KEY_FILE, 0o640)
    with pytest.raises(SystemExit, match="chmod 600"):
        load_or_make_key(tmp_path)


def test_the_store_keeps_a_learners_first_record_of_a_course(tmp_path):
    store = ProgressStore(tmp_path / "progress.sqlite")
    first = c.StoredRecord(record=a_record(), token="t1")
    again = c.StoredRecord(record=a_record().model_copy(update={"verification_id": "AAAA-BBBB-CCCC-DDDD"}), token="t2")
    assert store.add_record(first) == first
    assert store.add_record(again) == first  # the learner's record stays the one issued first
    assert ProgressStore(tmp_path / "progress.sqlite").record_of("ada", "c") == first
    assert store.record("K7QD-2M4X-PA6Z-T3NB") == first and store.record("AAAA-BBBB-CCCC-DDDD") is None
    assert store.record_of("bob", "c") is None

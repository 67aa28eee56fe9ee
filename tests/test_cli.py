"""The ``mailyard`` command's offline subcommands: normalize and rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def mailyard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailyard.cli", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )


def test_normalize_prints_one_json_object_per_event(tmp_path: Path) -> None:
    body = tmp_path / "sg.json"
    body.write_bytes(
        b'[{"email":"a@gmail.com","timestamp":1764720000,"event":"bounce",'
        b'"sg_event_id":"e1","sg_message_id":"m1.f","type":"bounce",'
        b'"reason":"550 5.1.1 No such user","status":"5.1.1"},\r\n'
        b'{"email":"b@yahoo.com","timestamp":1764720001,"event":"open",'
        b'"sg_event_id":"e2"}\r\n]\r\n'
    )
    done = mailyard("normalize", "--esp", "sendgrid", str(body))
    lines = [json.loads(line) for line in done.stdout.splitlines()]

    assert done.returncode == 0, done.stderr
    assert [e["type"] for e in lines] == ["bounced", "opened"]
    assert lines[0]["timestamp"] == "2025-12-03T00:00:00Z"
    assert lines[0]["smtp_code"] == 550 and lines[0]["bounce_class"] == "hard"
    assert lines[1]["mailbox_provider"] == "yahoo"


def test_normalize_of_a_malformed_body_fails_with_the_reason(tmp_path: Path) -> None:
    body = tmp_path / "bad.json"
    body.write_bytes(b'{"not": "a batch"')
    done = mailyard("normalize", "--esp", "sendgrid", str(body))

    assert done.returncode == 2
    assert "sendgrid" in done.stderr and done.stdout == ""


def test_normalize_names_the_known_esps_for_an_unknown_one(tmp_path: Path) -> None:
    body = tmp_path / "x.json"
    body.write_text("[]")
    done = mailyard("normalize", "--esp", "nosuch", str(body))
    assert done.returncode == 2 and "mailgun" in done.stderr


def test_rules_validate_accepts_the_example_and_refuses_a_bad_file(tmp_path: Path) -> None:
    good = mailyard("rules", "validate", "examples/rules.yaml")
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(
        (ROOT / "examples/rules.yaml").read_text().replace("weight: 20", "weight: 10")
    )
    bad = mailyard("rules", "validate", str(bad_file))

    assert good.returncode == 0 and "valid" in good.stdout
    assert bad.returncode == 1
    assert "marketing-split" in bad.stderr and "sum to 100" in bad.stderr


def test_rules_simulate_prints_the_decision_per_recipient() -> None:
    done = mailyard("rules", "simulate", "examples/rules.yaml",
                    "--message", "examples/messages/password_reset.json")
    out = json.loads(done.stdout)

    assert done.returncode == 0, done.stderr
    assert [d["recipient"] for d in out["decisions"]] == [
        "sam@gmail.com", "sam.backup@icloud.com"]
    assert {d["rule"] for d in out["decisions"]} == {"transactional-failover"}
    assert out["summary"]["by_destination"] == {"primary-sendgrid": 2}

"""Settings: defaults, every error case (one line naming file + key, exit 78), topic validation, password."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.errors import ConfigError
from daemon.settings import Settings, load_settings
from daemon.topics import topic_prefix_problem, topic_segment_problem
from edge.errors import EX_CONFIG

EXAMPLE = Path(__file__).resolve().parents[2] / "systemd" / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def error(
    tmp_path: Path, text: str, overrides: dict[str, object] | None = None, env: dict[str, str] | None = None
) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), overrides, environ=env or {})
    exc = info.value
    assert exc.exit_code == EX_CONFIG
    assert "\n" not in str(exc)
    return exc


def test_example_config_parses_to_the_defaults() -> None:
    s = load_settings(EXAMPLE, environ={})
    defaults = Settings()
    for section in ("source", "model", "pipeline", "log"):
        assert getattr(s, section) == getattr(defaults, section), section
    assert s.discovery.enabled and s.discovery.prefix == "homeassistant"
    assert s.discovery.device_name == f"Genre Pi {s.mqtt.device_id}"
    assert s.mqtt.port == 1883 and s.mqtt.qos == 1 and s.mqtt.prefix == "genre"
    assert s.mqtt.device_id  # the hostname
    assert s.mqtt.client_id == f"genre-daemon-{s.mqtt.device_id}"


def _example_docs() -> dict[str, dict[str, str]]:
    """``{section: {key: comment}}``: the comment lines above a key (keys without their own share the last)."""
    docs: dict[str, dict[str, str]] = {}
    section, comment, after_key = "", [], False
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            section, comment, after_key = line[1:-1], [], False
        elif line.startswith("#") and section:
            comment, after_key = ([] if after_key else comment) + [line], False
        elif "=" in line and section:
            docs.setdefault(section, {})[line.split("=", 1)[0].strip()] = "\n".join(comment)
            after_key = True
    return docs


def test_example_documents_every_key() -> None:
    import dataclasses
    import tomllib

    from daemon.settings import SECTIONS

    doc = tomllib.loads(EXAMPLE.read_text())
    documented = _example_docs()
    for name, cls in SECTIONS.items():
        keys = {f.name for f in dataclasses.fields(cls)} - {"password"}
        # A key whose default is None ("the model bundle's value") is documented commented out:
        # setting it in the example would override the rule tuned with the model.
        commented = {k for k in keys if getattr(cls(), k) is None and f"\n# {k} = " in EXAMPLE.read_text()}
        both = set(doc[name]) | commented
        assert both == keys, f"[{name}] example keys differ: {both ^ keys}"
        assert not set(doc[name]) & commented
        assert set(documented[name]) == set(doc[name]), name


def test_example_states_each_fields_range_unit_choices_and_flag() -> None:
    import re

    from daemon.config_fields import described, range_text
    from daemon.settings import SECTIONS

    docs = _example_docs()
    flags = set()
    for name, cls in SECTIONS.items():
        for key, meta in described(cls):
            if key not in docs[name]:
                continue  # a commented-out decision override: DecisionParams documents its range
            text = docs[name][key]
            where = f"[{name}] {key}: {text!r}"
            if meta.low is not None:
                assert range_text(meta) in text, f"{where} does not state the range {range_text(meta)}"
            elif meta.unit:
                assert meta.unit in text, f"{where} does not name the unit {meta.unit}"
            for choice in meta.choices:
                assert choice == "" or str(choice) in text, f"{where} does not name the choice {choice!r}"
            if meta.flag:
                assert f"[{meta.flag}" in text, f"{where} does not name its flag {meta.flag}"
                flags.add(meta.flag)
    named = set(re.findall(r"\[(--[a-z-]+)", EXAMPLE.read_text()))
    assert named == flags, f"flags in the example but not on a field, or the reverse: {named ^ flags}"


def test_every_flag_named_on_a_field_is_accepted_and_sets_its_key(tmp_path: Path) -> None:
    from daemon.cli import build_parser, overrides_from_args

    audio = tmp_path / "a.wav"
    audio.write_bytes(b"")
    argv = ["--source", f"file:{audio}", "--speed", "0", "--loop", "--device", "3", "--model", str(tmp_path),
            "--hop", "0.5", "--mqtt-host", "h", "--mqtt-port", "1999", "--prefix", "p", "--device-id", "d",
            "--log-level", "DEBUG"]  # fmt: skip
    got = overrides_from_args(build_parser().parse_args(argv))
    assert got == {
        "source.kind": "file", "source.path": str(audio), "source.speed": 0.0, "source.loop": True,
        "source.device": 3, "model.path": str(tmp_path), "pipeline.hop_s": 0.5, "mqtt.host": "h",
        "mqtt.port": 1999, "mqtt.prefix": "p", "mqtt.device_id": "d", "log.level": "DEBUG",
    }  # fmt: skip
    assert overrides_from_args(build_parser().parse_args([])) == {}
    assert overrides_from_args(build_parser().parse_args(["--source", "mic", "--device", "USB"])) == {
        "source.kind": "mic",
        "source.device": "USB",
    }


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, ""), environ={})
    assert s.pipeline.hop_s == 0.0 and s.source.kind == "mic" and s.discovery.prefix == "homeassistant"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "nope.toml", environ={})
    assert str(info.value) == f"{tmp_path / 'nope.toml'}: no such file"


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    exc = error(tmp_path, "[mqtt\n")
    assert str(exc).startswith(f"{tmp_path / 'config.toml'}: invalid TOML") and "line 1" in str(exc)


def test_unknown_section(tmp_path: Path) -> None:
    exc = error(tmp_path, "[mqt]\nhost = 'x'\n")
    assert exc.key == "mqt" and "unknown section" in str(exc)


def test_unknown_key(tmp_path: Path) -> None:
    exc = error(tmp_path, "[mqtt]\nhots = 'x'\n")
    assert exc.key == "mqtt.hots" and exc.file == str(tmp_path / "config.toml") and "unknown key" in str(exc)


def test_section_must_be_a_table(tmp_path: Path) -> None:
    assert error(tmp_path, "mqtt = 3\n").key == "mqtt"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("[mqtt]\nport = '1883'\n", "mqtt.port", "must be an integer, got a string '1883'"),
        ("[mqtt]\nport = 1883.0\n", "mqtt.port", "must be an integer"),
        ("[mqtt]\ntls = 1\n", "mqtt.tls", "must be a boolean"),
        ("[pipeline]\nhop_s = true\n", "pipeline.hop_s", "must be a number"),
        ("[pipeline]\nhop_s = nan\n", "pipeline.hop_s", "finite"),
        ("[source]\ndevice = 1.5\n", "source.device", "string or an integer"),
        ("[log]\nlevel = ['info']\n", "log.level", "must be a string, got an array"),
    ],
)
def test_wrong_type(tmp_path: Path, text: str, key: str, words: str) -> None:
    exc = error(tmp_path, text)
    assert exc.key == key and words in str(exc), str(exc)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[source]\nkind = 'line-in'\n", "source.kind"),
        ("[source]\nkind = 'file'\n", "source.path"),
        ("[source]\nkind = 'file'\npath = '/no/such.ogg'\n", "source.path"),
        ("[source]\nspeed = -1\n", "source.speed"),
        ("[source]\ndevice = -2\n", "source.device"),
        ("[source]\nrate = 1000\n", "source.rate"),
        ("[source]\nchannels = 64\n", "source.channels"),
        ("[source]\nsample_format = 'int24'\n", "source.sample_format"),
        ("[source]\nchunk_s = 0\n", "source.chunk_s"),
        ("[source]\nqueue_s = 0.01\n", "source.queue_s"),
        ("[source]\nretry_max_s = 0\n", "source.retry_max_s"),
        ("[model]\npath = '/no/such/bundle'\n", "model.path"),
        ("[model]\nthreads = 0\n", "model.threads"),
        ("[model]\nruntime = 'tensorflow'\n", "model.runtime"),
        ("[pipeline]\nhop_s = 0.01\n", "pipeline.hop_s"),
        ("[pipeline]\nsilence_dbfs = 3\n", "pipeline.silence_dbfs"),
        ("[pipeline]\nmin_confidence = 1.5\n", "pipeline.min_confidence"),
        ("[pipeline]\nsmoothing_windows = 0\n", "pipeline.smoothing_windows"),
        ("[pipeline]\nhysteresis_windows = 0\n", "pipeline.hysteresis_windows"),
        ("[mqtt]\nhost = ''\n", "mqtt.host"),
        ("[mqtt]\nport = 0\n", "mqtt.port"),
        ("[mqtt]\nport = 70000\n", "mqtt.port"),
        ("[mqtt]\nqos = 3\n", "mqtt.qos"),
        ("[mqtt]\nkeepalive_s = 1\n", "mqtt.keepalive_s"),
        ("[mqtt]\nreconnect_max_s = 60\n", "mqtt.reconnect_max_s"),
        ("[mqtt]\nreconnect_min_s = 0\n", "mqtt.reconnect_min_s"),
        ("[mqtt]\nca_file = '/etc/hostname'\n", "mqtt.ca_file"),
        ("[mqtt]\ntls = true\nca_file = '/no/ca.pem'\n", "mqtt.ca_file"),
        ("[mqtt]\ntls = true\nkey_file = '/etc/hostname'\n", "mqtt.key_file"),
        ("[mqtt]\ntls_insecure = true\n", "mqtt.tls_insecure"),
        ("[mqtt]\npassword_file = '/no/pw'\nusername = 'pi'\n", "mqtt.password_file"),
        ("[mqtt]\npassword = 'hunter2'\n", "mqtt.password"),
        ("[discovery]\nprefix = 'home/#'\n", "discovery.prefix"),
        ("[discovery]\nprefix = '/ha'\n", "discovery.prefix"),
        ("[log]\nlevel = 'loud'\n", "log.level"),
    ],
)
def test_bad_value_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    exc = error(tmp_path, text)
    assert exc.key == key, str(exc)
    assert str(exc).startswith(f"{tmp_path / 'config.toml'}: {key}: "), str(exc)


@pytest.mark.parametrize("key", ["prefix", "device_id"])
@pytest.mark.parametrize("value", ["a+b", "a#", "a/b", "$SYS", " pad"])
def test_topic_levels_rejected(tmp_path: Path, key: str, value: str) -> None:
    exc = error(tmp_path, f"[mqtt]\n{key} = {value!r}\n")
    assert exc.key == f"mqtt.{key}" and repr(value) in str(exc), str(exc)


def test_empty_prefix_rejected_but_empty_device_id_means_hostname(tmp_path: Path) -> None:
    assert error(tmp_path, "[mqtt]\nprefix = ''\n").key == "mqtt.prefix"
    assert load_settings(write(tmp_path, "[mqtt]\ndevice_id = ''\n"), environ={}).mqtt.device_id


def test_topic_problem_functions() -> None:
    assert topic_segment_problem("kitchen") is None
    assert topic_segment_problem("kitchen-pi_2.local") is None
    for bad in ("", "+", "a#", "a/b", "\0", "$x"):
        assert topic_segment_problem(bad), bad
    assert topic_prefix_problem("homeassistant") is None
    assert topic_prefix_problem("ha/discovery") is None
    for bad in ("", "/ha", "ha/", "ha//x", "ha/+"):
        assert topic_prefix_problem(bad), bad


def test_cli_overrides_win_and_errors_name_the_flag(tmp_path: Path) -> None:
    cfg = write(tmp_path, "[mqtt]\nport = 1884\nprefix = 'x'\n")
    s = load_settings(cfg, {"mqtt.port": 1999, "mqtt.device_id": "den"}, environ={})
    assert (s.mqtt.port, s.mqtt.prefix, s.mqtt.device_id) == (1999, "x", "den")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, {"mqtt.device_id": ""}, environ={})
    assert str(info.value) == "command line: --device-id (mqtt.device_id): must not be empty, got ''"
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, {"pipeline.hop_s": 0.01}, environ={})
    assert str(info.value).startswith("command line: --hop (pipeline.hop_s): ")


def test_password_from_file_strips_newline_and_never_shows(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret-pw\n")
    s = load_settings(write(tmp_path, f"[mqtt]\nusername = 'pi'\npassword_file = '{pw}'\n"), environ={})
    assert s.mqtt.password == "s3cret-pw"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s)


def test_password_from_systemd_credential(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("from-cred")
    s = load_settings(write(tmp_path, "[mqtt]\nusername = 'pi'\n"), environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert s.mqtt.password == "from-cred"
    s = load_settings(write(tmp_path, "[mqtt]\nusername = 'pi'\n"), environ={})
    assert s.mqtt.password == ""


def test_password_without_username_is_an_error(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("x")
    assert error(tmp_path, f"[mqtt]\npassword_file = '{pw}'\n").key == "mqtt.username"


def test_empty_password_file_is_an_error(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("\n")
    exc = error(tmp_path, f"[mqtt]\nusername = 'u'\npassword_file = '{pw}'\n")
    assert exc.key == "mqtt.password_file" and "empty" in str(exc)


def test_file_source_and_tls_files_accepted(tmp_path: Path) -> None:
    audio = tmp_path / "a.ogg"
    audio.write_bytes(b"x")
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    s = load_settings(
        write(tmp_path, f"[source]\nkind = 'file'\npath = '{audio}'\n[mqtt]\ntls = true\nca_file = '{ca}'\n"),
        environ={},
    )
    assert s.source.kind == "file" and s.mqtt.ca_file == str(ca)


def test_device_index_or_name(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "[source]\ndevice = 2\n"), environ={}).source.device == 2
    assert load_settings(write(tmp_path, "[source]\ndevice = 'USB'\n"), environ={}).source.device == "USB"


def test_topics(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "[mqtt]\nprefix = 'g'\ndevice_id = 'den'\n"), environ={})
    assert s.topic("state") == "g/den/state"


def test_empty_credential_means_no_password(tmp_path: Path) -> None:
    # The unit's SetCredential=mqtt_password: fallback gives an empty file when no password is installed.
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("")
    s = load_settings(write(tmp_path, ""), environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert s.mqtt.password == "" and s.mqtt.username == ""

"""Flags as Mesos takes them: ``--name=value``, ``--[no-]bool``, ``MESOS_*`` and durations."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime import flags
from agent_runtime.agent.config import AgentConfig
from agent_runtime.errors import FlagError
from agent_runtime.flags import Bytes, Duration, flag
from agent_runtime.master.config import MasterConfig


@dataclass(frozen=True)
class _Config:
    port: int = flag(5050, "a port")
    ratio: float = flag(1.0, "a float")
    quiet: bool = flag(False, "a bool")
    timeout: Duration = flag(Duration(15.0), "a duration")
    grace: Duration | None = flag(None, "an optional duration")
    name: str | None = flag(None, "an optional string")


def _load(argv: list[str], environ: dict[str, str] | None = None) -> _Config:
    return flags.load(_Config, argv, environ or {})


# Durations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5secs", 5.0),
        ("100ms", 0.1),
        ("500us", 0.0005),
        ("10ns", 1e-8),
        ("1.5mins", 90.0),
        ("2hrs", 7200.0),
        ("3days", 259200.0),
        ("2weeks", 1209600.0),
        ("0.5secs", 0.5),
        ("15", 15.0),  # ours: a bare number is seconds
    ],
)
def test_mesos_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert Duration.parse(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize("text", ["5s", "5sec", "5 minutes", "5SECS", "abc", "", "-5secs",
                                  "secs", "1e3secs", "5secs5"])
def test_invalid_durations_are_flag_errors_quoting_the_text(text: str) -> None:
    with pytest.raises(FlagError) as caught:
        Duration.parse(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        # stout's operator<<: the largest unit, or the next smaller one to stay whole.
        (15.0, "15secs"),
        (1.0, "1secs"),
        (600.0, "10mins"),  # --agent_reregister_timeout's default, as /flags shows it
        (90.0, "90secs"),
        (0.5, "500ms"),
        (1.5, "1500ms"),
        (0.0015, "1500us"),
        (3600.0, "1hrs"),
        (5400.0, "90mins"),
        (86400.0, "1days"),
        (129600.0, "36hrs"),
        (1209600.0, "2weeks"),
        (864000.0, "10days"),
        (1e-7, "100ns"),
        (0.0, "0ns"),
    ],
)
def test_durations_render_as_mesos_renders_them(seconds: float, text: str) -> None:
    assert Duration(seconds).mesos() == text


@given(nanos=st.integers(min_value=0, max_value=10**15))
def test_rendered_durations_parse_back(nanos: int) -> None:
    duration = Duration(nanos / 1e9)
    assert Duration.parse(duration.mesos()) == pytest.approx(duration, rel=1e-12, abs=1e-12)


# Command line -----------------------------------------------------------------------------------


def test_defaults_apply_when_nothing_is_given() -> None:
    assert _load([]) == _Config()


def test_name_equals_value_and_name_space_value() -> None:
    config = _load(["--port=6000", "--timeout", "100ms", "--name=x"])
    assert config.port == 6000
    assert config.timeout == pytest.approx(0.1)
    assert config.name == "x"


def test_hyphens_and_underscores_name_the_same_flag() -> None:
    assert flags.load(AgentConfig, ["--work-dir=/w"], {}).work_dir == "/w"
    assert flags.load(AgentConfig, ["--work_dir=/w"], {}).work_dir == "/w"


@pytest.mark.parametrize(
    ("argv", "quiet"),
    [(["--quiet"], True), (["--no-quiet"], False), (["--quiet=false"], False),
     (["--quiet=true"], True), (["--quiet", "--no-quiet"], False)],
)
def test_boolean_flags(argv: list[str], quiet: bool) -> None:
    assert _load(argv).quiet is quiet


def test_the_last_occurrence_wins() -> None:
    assert _load(["--port=1", "--port=2"]).port == 2


def test_an_empty_value_unsets_an_optional_flag() -> None:
    assert _load(["--grace="]).grace is None
    assert _load(["--grace=5secs"]).grace == 5.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port=abc"], "--port: invalid value 'abc'"),
        (["--port=5.5"], "--port: invalid value '5.5'"),
        (["--port="], "--port: invalid value ''"),
        (["--ratio=nan"], "--ratio: 'nan' is not a finite number"),
        (["--ratio=inf"], "--ratio: 'inf' is not a finite number"),
        (["--quiet=maybe"], "--quiet: expected true or false, got 'maybe'"),
        (["--timeout=5s"], "invalid duration unit 's'"),
        (["--nope=1"], "unknown flag --nope"),
        (["--no-port"], "unknown flag --no-port"),
        (["--port"], "--port needs a value"),
        (["port=1"], "unexpected argument 'port=1'"),
    ],
)
def test_bad_command_lines_give_a_clear_flag_error(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError) as caught:
        _load(argv)
    assert message in str(caught.value)


# MESOS_* environment ----------------------------------------------------------------------------


def test_mesos_environment_variables_set_flags() -> None:
    config = flags.load(MasterConfig, [], {
        "MESOS_PORT": "6050", "MESOS_ALLOCATION_INTERVAL": "100ms", "MESOS_QUIET": "true",
        "MESOS_WEIGHTS": "ads=2,eng=3.5", "MESOS_OFFER_TIMEOUT": "1mins",
    })
    assert config.port == 6050
    assert config.allocation_interval == pytest.approx(0.1)
    assert config.quiet is True
    assert config.weight_map() == {"ads": 2.0, "eng": 3.5}
    assert config.offer_timeout == 60.0


def test_agent_resources_come_from_the_environment() -> None:
    config = flags.load(AgentConfig, [], {"MESOS_RESOURCES": "cpus:4;mem:2048",
                                          "MESOS_WORK_DIR": "/var/lib/mesos"})
    assert (config.resources, config.work_dir) == ("cpus:4;mem:2048", "/var/lib/mesos")


def test_the_command_line_wins_over_the_environment() -> None:
    assert _load(["--port=7000"], {"MESOS_PORT": "6000"}).port == 7000
    assert _load(["--no-quiet"], {"MESOS_QUIET": "true"}).quiet is False


def test_a_bad_environment_value_overridden_on_the_command_line_is_not_an_error() -> None:
    # Mesos merges the environment and the command line before it converts anything.
    assert _load(["--port=7000"], {"MESOS_PORT": "abc"}).port == 7000


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(FlagError) as caught:
        _load([], {"MESOS_TIMEOUT": "soon"})
    assert "MESOS_TIMEOUT" in str(caught.value) and "'soon'" in str(caught.value)


def test_unknown_and_unprefixed_variables_are_ignored() -> None:
    # The environment holds plenty of MESOS_* variables that are not flags of this daemon.
    config = _load([], {"MESOS_NATIVE_JAVA_LIBRARY": "/x.so", "PORT": "1", "mesos_port": "2"})
    assert config.port == 5050


def test_another_prefix_can_be_used() -> None:
    assert flags.load(_Config, [], {"X_PORT": "1", "MESOS_PORT": "2"}, prefix="X_").port == 1


# Byte sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "count"), [
    ("0", 0), ("100", 100), ("100B", 100), ("3KB", 3 << 10), ("512MB", 512 << 20),
    ("4GB", 4 << 30), ("2TB", 2 << 40), ("1536mb", 1536 << 20), (" 7 GB ", 7 << 30),
])
def test_mesos_byte_sizes_parse_in_units_of_1024(text: str, count: int) -> None:
    assert Bytes.parse(text) == count


@pytest.mark.parametrize("text", ["", "GB", "1.5GB", "-1GB", "4GiB", "4 G B", "4PB", "x"])
def test_invalid_byte_sizes_are_flag_errors_quoting_the_text(text: str) -> None:
    with pytest.raises(FlagError) as caught:
        Bytes.parse(text)
    assert repr(text) in str(caught.value)


@given(st.integers(min_value=0, max_value=1 << 50))
def test_byte_sizes_render_in_the_largest_exact_unit_and_parse_back(count: int) -> None:
    text = Bytes(count).mesos()
    assert Bytes.parse(text) == count
    number, unit = int(text.rstrip("BKMGT")), text.lstrip("0123456789")
    assert unit == "TB" or count == 0 or number % 1024 != 0  # no larger unit would do


def test_byte_flags_load_and_render_as_mesos_writes_them() -> None:
    config = flags.load(AgentConfig, ["--image_max_layer_size=512MB"],
                        {"MESOS_IMAGE_MAX_SIZE": "2GB"})
    assert config.image_max_layer_size == 512 << 20 and config.image_max_size == 2 << 30
    out = flags.as_strings(config)
    assert out["image_max_layer_size"] == "512MB" and out["image_max_size"] == "2GB"
    assert flags.as_strings(AgentConfig())["image_max_layer_size"] == "16GB"
    with pytest.raises(FlagError, match="image_max_size"):
        flags.load(AgentConfig, ["--image_max_size=lots"], {})


# Rendering and the CLI edge ----------------------------------------------------------------------


def test_as_strings_renders_flags_as_mesos_flags_endpoint_does() -> None:
    out = flags.as_strings(MasterConfig())
    assert out["port"] == "5050"
    assert out["filter_gpu_resources"] == "true"
    assert out["quiet"] == "false"
    assert out["allocation_interval"] == "1secs"
    assert out["agent_reregister_timeout"] == "10mins"
    assert "hostname" not in out  # unset optional flags are left out
    assert all(isinstance(v, str) for v in out.values())


def test_help_prints_usage_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        _load(["--help"])
    assert caught.value.code == 0
    assert "--port" in capsys.readouterr().out


def test_run_cli_turns_a_flag_error_into_one_line_and_exit_code_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def main() -> int:
        _load(["--port=abc"])
        return 0

    with pytest.raises(SystemExit) as caught:
        flags.run_cli(main)
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Failed to load flags: ") and "--port" in err
    assert err.count("\n") == 1 and "Traceback" not in err

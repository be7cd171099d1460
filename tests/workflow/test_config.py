"""Configuration: the schema fills defaults, rejects bad values naming the key, and guards output roots."""

import copy
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_snakemake
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def load(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


def test_defaults_are_filled_for_every_key() -> None:
    config: dict = {}
    validate(config, SCHEMA)
    assert config["root"] == "results"
    assert config["corpus"]["source"] == "dailydialog"
    assert config["corpus"]["synthetic"]["seed"] == 13
    assert config["data"]["split"] == {"train_end": 0.8, "dev_end": 0.9}
    assert config["data"]["vocab_size"] == 10000


def test_every_schema_property_has_a_default_and_a_description() -> None:
    schema = yaml.safe_load(Path(SCHEMA).read_text())

    def walk(node: dict, path: str) -> None:
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}{key} lacks a description"
            assert "default" in sub, f"{path}{key} lacks a default"
            walk(sub, f"{path}{key}.")

    walk(schema, "")


def test_config_readme_documents_every_key() -> None:
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    readme = (REPO / "config" / "README.md").read_text()

    def leaves(node: dict, prefix: str = "") -> list[str]:
        keys = []
        for key, sub in node.get("properties", {}).items():
            keys += leaves(sub, f"{prefix}{key}.") if "properties" in sub else [f"{prefix}{key}"]
        return keys

    missing = [key for key in leaves(schema) if f"`{key}`" not in readme]
    assert not missing, f"config/README.md does not document {missing}"


def test_config_readme_is_generated_from_the_current_schema() -> None:
    """config/README.md is written by `python -m multiref.config_doc` from the schema: the schema is the one place
    a key is described, and the README may not drift from it."""
    from multiref import config_doc

    assert (REPO / "config" / "README.md").read_text() == config_doc.current(), "run `python -m multiref.config_doc`"


@pytest.mark.parametrize("override", [None, "config/demo.yaml", ".test/config-paper/config.yaml"])
def test_shipped_configs_validate(override: str | None) -> None:
    """The paper's configuration, and each override on top of it as Snakemake applies `--configfile`."""
    from snakemake.utils import update_config

    config = load("config.yaml")
    if override:
        update_config(config, yaml.safe_load((REPO / override).read_text()))
    validate(config, SCHEMA)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"data": {"vocab_size": "big"}}, "'big' is not of type 'integer'"),
        ({"data": {"history_len": 0}}, "0 is less than the minimum of 1"),
        ({"data": {"split": {"train_end": 1.5}}}, "1.5 is greater than the maximum of 1"),
        ({"corpus": {"source": "reddit"}}, "'reddit' is not one of"),
        ({"corpus": {"sha256": "abc"}}, "'abc' does not match"),
        ({"dat": {}}, "'dat' was unexpected"),
        ({"data": {"vocab": 5}}, "'vocab' was unexpected"),
    ],
)
def test_bad_values_are_rejected_naming_the_value(patch: dict, message: str) -> None:
    config = copy.deepcopy(load("config.yaml"))
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            for k, v in value.items():
                if isinstance(v, dict):
                    config[key][k] = {**config[key].get(k, {}), **v}
                else:
                    config[key][k] = v
        else:
            config[key] = value
    with pytest.raises(WorkflowError) as info:
        validate(config, SCHEMA)
    assert message in str(info.value)


def test_snakemake_reports_a_bad_config_file_and_creates_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"root: {tmp_path / 'out'}\ndata:\n  max_utterance_tokens: -3\n")
    proc = run_snakemake("--cores", "1", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert "-3 is less than the minimum of 1" in proc.stderr + proc.stdout
    assert "max_utterance_tokens" in proc.stderr + proc.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ({"settings": {"names": ["hyp7"]}}, "settings.names: data setting 'hyp7' has no epoch budget in the paper's Table 9"),
        ({"settings": {"names": ["hyp100"]}, "teacher": {"sampling": {"n": 20}}}, "'hyp100' needs 100 hypotheses per pair but teacher.sampling.n is 20"),
        ({"settings": {"names": ["gold"]}}, "'gold' does not match"),
        ({"teacher": {"shards": 0}}, "0 is less than the minimum of 1"),
        ({"teacher": {"sampling": {"top_p": 1.5}}}, "1.5 is greater than the maximum of 1"),
        ({"teacher": {"device": "gpu"}}, "'gpu' does not match"),
    ],
)
def test_unknown_or_impossible_teacher_settings_stop_the_dry_run(tmp_path: Path, overlay: dict, message: str) -> None:
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay | {"root": str(tmp_path / "out")}))
    proc = run_snakemake("-n", "--configfile", str(path), check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()


def test_report_captions_state_the_configured_values() -> None:
    """Captions that state a configurable value (interval level, resamples, judge margin, sample contexts) render it
    from the config, as Snakemake's report does with Jinja, rather than hard-coding the default."""
    from types import SimpleNamespace

    import jinja2

    config = load("config.yaml")
    config["tables"]["bootstrap"] = {"samples": 321, "level": 0.9}
    config.setdefault("mirror", {})["judge"] = {"margin": 0.37}
    config.setdefault("report", {})["sample_contexts"] = 7
    validate(config, SCHEMA)
    snakemake = SimpleNamespace(config=config, wildcards=SimpleNamespace(model="lgm", data="gt", table="table1"))
    captions = {}
    for path in sorted((REPO / "workflow" / "report").glob("*.rst")):
        captions[path.stem] = jinja2.Template(path.read_text(), undefined=jinja2.StrictUndefined).render(
            snakemake=snakemake
        )
    for name in ("table1", "table2", "table_mirror_pairwise"):
        assert "90% intervals" in captions[name] and "321 resamples" in captions[name], captions[name]
        assert "95" not in captions[name], captions[name]
    assert "within 0.37 of each other" in captions["table_mirror_pairwise"]
    assert "the same 7 test contexts" in captions["samples"]

"""infra/ is checked here, since no container engine or cluster runs on these machines.

What a container engine or the API server would refuse, we refuse first:

* the compose file, after compose's own ``${VAR}`` interpolation, against the
  Compose Specification's JSON Schema (vendored in the ``check-jsonschema``
  package, ``vendor/compose-spec.json``);
* every Kubernetes manifest against the API's JSON Schemas in strict mode (no
  unknown fields), as shipped offline by ``kubernetes-validate``;

and what only this service knows:

* every ``practice-events`` command line in the Dockerfile, the compose file and
  the manifests is accepted by the real argument parser and picks the intended
  command; every ``PRACTICE_EVENTS_*`` variable is a real setting whose value
  the real settings classes accept;
* probes name paths the real processes serve, on the ports their arguments
  open (the API's routes from the real app; the workers' probes by starting
  the real ``ingest`` and ``projections run`` processes with the manifests'
  arguments and asking them over HTTP);
* the topics the set-up jobs create are the ones the settings default to, and
  ``store init`` (the database job) creates a schema and the tables on real
  PostgreSQL and SQLite.
"""

from __future__ import annotations

import argparse
import base64
import copy
import functools
import importlib.resources
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from practice_events.cli import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, build_parser, main
from practice_events.cli import _load_extensions as load_cli_extensions
from practice_events.config import Settings, section_env_names, settings_sections
from practice_events.store.setup import init_stores
from tests.conftest import PG_HOST, PG_PORT, PG_USER, ensure_postgres

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"
K8S_VERSION = "1.30"
"""The oldest Kubernetes minor version the manifests must be valid for."""

IMAGE = "practice-events"
SECRET_VARS = {"POSTGRES_PASSWORD", "PRACTICE_EVENTS_CIPHER_KEY"}
ENVIRONMENT_ONLY = {"PRACTICE_EVENTS_CONFIG", "PRACTICE_EVENTS_AUDIT_KEY_FILE"}
"""Variables read from the environment directly, not through a settings class."""

PROBE_PATHS = {"/healthz", "/readyz"}

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML has it (several times faster), else the pure-Python one."""


def cipher_key_for_tests() -> str:
    """A well-formed AES-256 key (base64), as the real Secret would hold."""
    return base64.b64encode(bytes(range(32))).decode()


# -- reading the files ----------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Interpolate as compose does: ``${V}``, ``${V:-default}``, ``${V-default}``, ``${V:?err}``."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        if op in (":-", ":?") and not value:
            value = None
        if value is not None:
            return value
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return ""

    return _VAR.sub(substitute, text.replace("$$", "\0")).replace("\0", "$")


def compose_env() -> dict[str, str]:
    """The variables an operator puts in infra/.env (see .env.example)."""
    return {"POSTGRES_PASSWORD": "s3cretpw", "PRACTICE_EVENTS_CIPHER_KEY": cipher_key_for_tests()}


@functools.cache
def load_compose() -> dict[str, Any]:
    """The compose file as compose sees it after interpolation (read once; do not mutate)."""
    text = interpolate((INFRA / "compose.yaml").read_text(encoding="utf-8"), compose_env())
    doc = yaml.load(text, Loader=LOADER)
    assert isinstance(doc, dict)
    return doc


def k8s_files() -> list[Path]:
    """Every manifest file, the kustomization excluded."""
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@functools.cache
def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) for every Kubernetes object in infra/k8s (read once; do not mutate)."""
    out = []
    for path in k8s_files():
        for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=LOADER):
            if doc:
                out.append((path.name, doc))
    return out


def by_kind(kind: str) -> list[dict[str, Any]]:
    """Every object of one kind."""
    return [doc for _, doc in k8s_documents() if doc["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    """The one object of ``kind`` called ``name``."""
    found = [d for d in by_kind(kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every Deployment, StatefulSet and Job."""
    return [
        (f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"])
        for kind in ("Deployment", "StatefulSet", "Job")
        for doc in by_kind(kind)
    ]


def our_containers() -> list[tuple[str, dict[str, Any]]]:
    """(workload name, container) of every container that runs the practice-events image."""
    return [
        (workload, container)
        for workload, spec in pod_specs()
        for container in spec["containers"]
        if container["image"].split(":")[0] == IMAGE
    ]


def our_compose_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the practice-events image."""
    services = load_compose()["services"]
    return {
        name: svc
        for name, svc in services.items()
        if str(svc.get("image", "")).split(":")[0] == IMAGE
    }


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of infra/Dockerfile, continuation lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in (INFRA / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerfile_env() -> dict[str, str]:
    """The runtime stage's ENV (KEY=VALUE pairs)."""
    env: dict[str, str] = {}
    stage = 0
    for word, rest in dockerfile_instructions():
        if word == "FROM":
            stage += 1
        elif word == "ENV" and stage == 2:
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


# -- the services' own configuration ----------------------------------------------------------


def known_variables() -> set[str]:
    """Every PRACTICE_EVENTS_* variable a setting (core or section) reads."""
    names = {f"PRACTICE_EVENTS_{name.upper()}" for name in Settings.model_fields}
    for section in settings_sections().values():
        names.update(section_env_names(section).values())
    return names | ENVIRONMENT_ONLY


@functools.cache
def real_parser() -> argparse.ArgumentParser:
    """The ``practice-events`` parser with every installed command, built once."""
    load_cli_extensions()
    return build_parser()


def parse_command(argv: list[str]) -> argparse.Namespace:
    """Parse ``practice-events ARGV`` with the real parser (every installed command)."""
    try:
        return real_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing
        raise AssertionError(f"practice-events {' '.join(argv)} is refused ({exc})") from None


def command_name(args: argparse.Namespace) -> str:
    """The function an argument vector dispatches to."""
    return str(args.func.__name__)


def settings_accept(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Load the core settings and every section under exactly ``env`` (raises if refused)."""
    from practice_events.config import effective_settings, load_settings

    for key in list(os.environ):
        if key.startswith("PRACTICE_EVENTS_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("PRACTICE_EVENTS_"):
            monkeypatch.setenv(key, value)
    effective_settings(load_settings())


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """A container's PRACTICE_EVENTS_* environment as the pod would see it."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        env.update(named("ConfigMap", ref)["data"])
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text(encoding="utf-8"))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            key = item["valueFrom"]["secretKeyRef"]["key"]
            env[item["name"]] = secret["stringData"][key]
    if "PRACTICE_EVENTS_CIPHER_KEY" in env:  # the example holds a placeholder
        env["PRACTICE_EVENTS_CIPHER_KEY"] = cipher_key_for_tests()
    return env


# -- the compose file ------------------------------------------------------------------------


class TestComposeFile:
    def test_valid_against_the_compose_specification(self) -> None:
        schema_file = (
            importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
            / "compose-spec.json"
        )
        schema = json.loads(schema_file.read_text(encoding="utf-8"))
        validator = jsonschema.validators.validator_for(schema)(schema)
        doc = load_compose()
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == []
        broken = copy.deepcopy(doc)
        broken["services"]["api"]["healthcheck"]["intervals"] = "15s"
        assert list(validator.iter_errors(broken)), "the schema check must catch a typo"

    def test_refuses_to_start_without_its_secrets(self) -> None:
        text = (INFRA / "compose.yaml").read_text(encoding="utf-8")
        for name in SECRET_VARS:
            env = {k: v for k, v in compose_env().items() if k != name}
            with pytest.raises(KeyError, match=name):
                interpolate(text, env)
        example = (INFRA / ".env.example").read_text(encoding="utf-8")
        names = {line.split("=")[0] for line in example.splitlines() if "=" in line}
        assert names >= SECRET_VARS

    def test_kafka_runs_in_kraft_mode_and_postgres_has_a_volume(self) -> None:
        services = load_compose()["services"]
        kafka = services["kafka"]["environment"]
        assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert not any("ZOOKEEPER" in key for key in kafka)
        assert services["kafka"]["image"].startswith("apache/kafka:")
        assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])

    def test_workloads_start_after_the_set_up_jobs_which_start_after_their_servers(self) -> None:
        services = load_compose()["services"]
        assert services["db-init"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        assert services["kafka-topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
        for name in ("api", "ingest", "projections", "sealer"):
            assert services[name]["depends_on"] == {
                "db-init": {"condition": "service_completed_successfully"},
                "kafka-topics": {"condition": "service_completed_successfully"},
            }
        for name in ("db-init", "kafka-topics"):
            assert services[name]["restart"] == "no"

    def test_long_running_services_have_health_checks_and_resource_limits(self) -> None:
        services = load_compose()["services"]
        for name in ("postgres", "kafka", "api", "ingest", "projections"):
            check = services[name]["healthcheck"]
            assert check.get("disable") is not True, name
            assert check["test"], name
        for name in ("postgres", "kafka", "api", "ingest", "projections", "sealer"):
            resources = services[name]["deploy"]["resources"]
            assert resources["limits"]["memory"], name
            assert resources["reservations"]["memory"], name


# -- the Kubernetes manifests ------------------------------------------------------------------


class TestKubernetesManifests:
    @pytest.mark.parametrize(
        ("name", "doc"),
        [
            pytest.param(n, d, id=f"{n}:{d['kind']}/{d['metadata']['name']}")
            for n, d in k8s_documents()
        ],
    )
    def test_valid_against_the_api_schemas(self, name: str, doc: dict[str, Any]) -> None:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)

    def test_the_schema_check_catches_an_unknown_field(self) -> None:
        broken = copy.deepcopy(named("Deployment", "api"))
        broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = (
            "/readyz"
        )
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, K8S_VERSION, strict=True)

    def test_kustomization_applies_every_manifest_but_the_secret_example(self) -> None:
        kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
        expected = {p.name for p in k8s_files()} - {"secret.example.yaml"}
        assert sorted(kustomization["resources"]) == sorted(expected)
        assert kustomization["namespace"] == "practice-events"
        assert {i["name"] for i in kustomization["images"]} == {IMAGE}

    def test_every_object_lives_in_the_namespace_under_a_unique_name(self) -> None:
        seen: set[tuple[str, str]] = set()
        for _, doc in k8s_documents():
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in seen, key
            seen.add(key)
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == "practice-events", key
        assert ("Namespace", "practice-events") in seen

    def test_selectors_services_and_budgets_find_their_pods(self) -> None:
        templates = {
            f"{d['kind']}/{d['metadata']['name']}": d["spec"]["template"]
            for kind in ("Deployment", "StatefulSet")
            for d in by_kind(kind)
        }
        for key, template in templates.items():
            kind, name = key.split("/")
            selector = named(kind, name)["spec"]["selector"]["matchLabels"]
            assert selector.items() <= template["metadata"]["labels"].items(), key

        def matching(selector: Mapping[str, str]) -> list[dict[str, Any]]:
            return [
                t for t in templates.values() if selector.items() <= t["metadata"]["labels"].items()
            ]

        for service in by_kind("Service"):
            pods = matching(service["spec"]["selector"])
            assert pods, service["metadata"]["name"]
            ports = {
                p["name"]: p["containerPort"]
                for t in pods
                for c in t["spec"]["containers"]
                for p in c.get("ports", [])
            }
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in ports, (service["metadata"]["name"], port)
        for budget in by_kind("PodDisruptionBudget"):
            assert matching(budget["spec"]["selector"]["matchLabels"]), budget["metadata"]["name"]
        for hpa in by_kind("HorizontalPodAutoscaler"):
            target = hpa["spec"]["scaleTargetRef"]
            workload = named(target["kind"], target["name"])
            container = workload["spec"]["template"]["spec"]["containers"][0]
            assert container["resources"]["requests"]["cpu"], "CPU utilisation needs a request"
        statefulsets = {d["metadata"]["name"]: d for d in by_kind("StatefulSet")}
        for stateful in statefulsets.values():
            named("Service", stateful["spec"]["serviceName"])

    def test_pods_meet_the_restricted_pod_security_standard(self) -> None:
        namespace = named("Namespace", "practice-events")
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        for workload, spec in pod_specs():
            context = spec["securityContext"]
            assert context["runAsNonRoot"] is True, workload
            assert isinstance(context["runAsUser"], int), workload
            assert context["runAsUser"] > 0, workload
            assert context["seccompProfile"]["type"] == "RuntimeDefault", workload
            for container in spec["containers"]:
                sc = container["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, workload
                assert sc["capabilities"]["drop"] == ["ALL"], workload
                assert "privileged" not in sc, workload
                assert "hostNetwork" not in spec, workload
                resources = container["resources"]
                assert resources["requests"]["cpu"], workload
                assert resources["requests"]["memory"], workload
                assert resources["limits"]["memory"], workload

    def test_secret_and_config_references_resolve(self) -> None:
        secret = yaml.safe_load((K8S / "secret.example.yaml").read_text(encoding="utf-8"))
        for workload, spec in pod_specs():
            for container in spec["containers"]:
                for source in container.get("envFrom", []):
                    named("ConfigMap", source["configMapRef"]["name"])
                for item in container.get("env", []):
                    ref = item.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["name"] == secret["metadata"]["name"], workload
                        assert ref["key"] in secret["stringData"], (workload, ref["key"])
        for value in secret["stringData"].values():
            assert "REPLACE-ME" in value, "the example must hold no real secret"

    def test_the_store_url_and_cipher_key_come_from_the_secret_only(self) -> None:
        config = named("ConfigMap", "practice-events")["data"]
        assert "PRACTICE_EVENTS_STORE" not in config
        assert "PRACTICE_EVENTS_CIPHER_KEY" not in config
        for workload, container in our_containers():
            refs = {
                item["name"]: item["valueFrom"]["secretKeyRef"]["key"]
                for item in container.get("env", [])
                if "valueFrom" in item
            }
            assert refs.get("PRACTICE_EVENTS_STORE") == "store-url", workload

    def test_kafka_bootstrap_names_the_brokers_of_the_statefulset(self) -> None:
        kafka = named("StatefulSet", "kafka")
        replicas, service = kafka["spec"]["replicas"], kafka["spec"]["serviceName"]
        expected = [f"kafka-{i}.{service}.practice-events.svc:9092" for i in range(replicas)]
        bootstrap = named("ConfigMap", "practice-events")["data"]["PRACTICE_EVENTS_KAFKA_BOOTSTRAP"]
        assert bootstrap.split(",") == expected
        job = named("Job", "kafka-topics")["spec"]["template"]["spec"]["containers"][0]
        assert f"BOOTSTRAP={bootstrap}\n" in job["args"][0]
        env = {
            e["name"]: e["value"] for e in kafka["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
        assert voters == [
            f"{i}@kafka-{i}.{service}.practice-events.svc:9093" for i in range(replicas)
        ]


# -- the service's own configuration -------------------------------------------------------------


def invocations() -> list[tuple[str, list[str]]]:
    """(where, argv) of every practice-events command line in infra/."""
    out: list[tuple[str, list[str]]] = []
    for word, rest in dockerfile_instructions():
        if word == "CMD" and rest.startswith("["):
            out.append(("Dockerfile CMD", json.loads(rest)))
    for name, svc in our_compose_services().items():
        out.append((f"compose {name}", [str(a) for a in svc["command"]]))
    for workload, container in our_containers():
        out.append((f"k8s {workload}", [str(a) for a in container["args"]]))
    return out


RUNNERS = ("projections", "projections-ledger")
"""The Deployments of projection runners; together they own every projection once."""


def owned_projections(argv: list[str]) -> list[str]:
    """The projections a ``projections run`` command line owns, by the real registry."""
    from projections.registry import all_projections, names_list, select

    args = parse_command(argv)
    chosen = select(
        all_projections(Settings(), args.plugin),
        only=names_list(args.only),
        exclude=names_list(args.exclude),
    )
    return [p.NAME for p in chosen]


EXPECTED_COMMAND = {
    "api": "cmd_api",
    "ingest": "run_ingest",
    "projections": "cmd_run",
    "audit": "cmd_seal",
    "store": "cmd_store_init",
}


class TestCommandsAndSettings:
    @pytest.mark.parametrize(("where", "argv"), invocations(), ids=str)
    def test_every_command_line_is_accepted_by_the_real_parser(
        self, where: str, argv: list[str]
    ) -> None:
        args = parse_command(argv)
        assert command_name(args) == EXPECTED_COMMAND[argv[0]], where

    def test_the_parser_refuses_what_it_does_not_know(self) -> None:
        with pytest.raises(AssertionError, match="refused"):
            parse_command(["ingest", "--health-prot", "8081"])

    def test_every_variable_is_a_real_setting(self) -> None:
        known = known_variables()
        used: dict[str, str] = {}
        for key in dockerfile_env():
            used[key] = "Dockerfile"
        for name, svc in our_compose_services().items():
            for key in svc.get("environment", {}):
                used[key] = f"compose {name}"
        for key in named("ConfigMap", "practice-events")["data"]:
            used[key] = "ConfigMap"
        for workload, container in our_containers():
            for item in container.get("env", []):
                used[item["name"]] = workload
        ours = {k: v for k, v in used.items() if k.startswith("PRACTICE_EVENTS_")}
        assert len(ours) > 10
        unknown = {k: v for k, v in ours.items() if k not in known}
        assert unknown == {}

    def test_settings_accept_the_values_of_every_process(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for svc in our_compose_services().values():
            with monkeypatch.context() as m:
                settings_accept({k: str(v) for k, v in svc["environment"].items()}, m)
        for _, container in our_containers():
            with monkeypatch.context() as m:
                settings_accept(container_env(container), m)
        with monkeypatch.context() as m:
            env = dockerfile_env()
            settings_accept(env, m)
            assert env["PRACTICE_EVENTS_STORE"].startswith("sqlite:////var/lib/practice-events/")

    def test_topics_are_the_settings_defaults(self) -> None:
        defaults = Settings.model_construct()  # the declared defaults, not this environment's
        assert defaults.kafka_topic == "practice.events.v1"
        created = {
            "compose": " ".join(load_compose()["services"]["kafka-topics"]["command"]),
            "k8s": " ".join(
                named("Job", "kafka-topics")["spec"]["template"]["spec"]["containers"][0]["args"]
            ),
        }
        for where, script in created.items():
            topics = re.findall(
                r"--create --if-not-exists\s+--topic (\S+)", script.replace("\\\n", " ")
            )
            assert topics == [defaults.kafka_topic, defaults.dlq_topic], where
        config = named("ConfigMap", "practice-events")["data"]
        assert config["PRACTICE_EVENTS_KAFKA_TOPIC"] == defaults.kafka_topic
        assert config["PRACTICE_EVENTS_KAFKA_DLQ_TOPIC"] == defaults.dlq_topic
        assert config["PRACTICE_EVENTS_KAFKA_GROUP"] == defaults.kafka_group

    def test_every_projection_has_exactly_one_runner_and_one_scheduler_runs(self) -> None:
        from projections.registry import all_projections

        owners: dict[str, list[str]] = {}
        schedulers = []
        for name in RUNNERS:
            container = named("Deployment", name)["spec"]["template"]["spec"]["containers"][0]
            for projection in owned_projections(container["args"]):
                owners.setdefault(projection, []).append(name)
            if parse_command(container["args"]).with_scheduler:
                schedulers.append(name)
        everything = {p.NAME for p in all_projections(Settings())}
        assert set(owners) == everything
        assert all(len(deployments) == 1 for deployments in owners.values()), owners
        assert owners["ledger"] == ["projections-ledger"]
        assert schedulers == ["projections"]
        compose = our_compose_services()["projections"]["command"]
        assert set(owned_projections(compose)) == everything
        assert parse_command(compose).with_scheduler

    def test_the_database_jobs_run_store_init(self) -> None:
        job = named("Job", "db-init")["spec"]["template"]["spec"]["containers"][0]
        assert parse_command(job["args"]).wait >= 60
        compose = our_compose_services()["db-init"]
        assert command_name(parse_command(compose["command"])) == "cmd_store_init"


# -- probes and ports ------------------------------------------------------------------------


def probe(container: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """A container's HTTP probe of ``kind`` (liveness, readiness, startup)."""
    found = container[f"{kind}Probe"]["httpGet"]
    assert isinstance(found, dict)
    return found


def port_number(container: Mapping[str, Any], port: str | int) -> int:
    """Resolve a named container port."""
    if isinstance(port, int):
        return port
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    return int(ports[port])


class TestProbesAndPorts:
    def test_api_probes_name_routes_of_the_real_app(self) -> None:
        from practice_events.api.app import create_app
        from practice_events.api.cli import api_plugins

        app = create_app(Settings(), plugins=api_plugins())
        routes = set(app.openapi()["paths"])  # every route the app serves, plugins' included
        assert {"/v1/events", "/v1/findings"} <= routes
        container = named("Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
        args = parse_command(container["args"])
        for kind in ("startup", "liveness", "readiness"):
            http = probe(container, kind)
            assert http["path"] in routes
            assert port_number(container, http["port"]) == args.port
        assert probe(container, "liveness")["path"] == "/healthz"
        assert probe(container, "readiness")["path"] == "/readyz"

    def test_worker_probes_use_the_health_port_their_arguments_open(self) -> None:
        for name in ("ingest", *RUNNERS):
            container = named("Deployment", name)["spec"]["template"]["spec"]["containers"][0]
            args = parse_command(container["args"])
            assert args.health_host == "0.0.0.0", "probes come from outside the pod"
            for kind in ("liveness", "readiness"):
                http = probe(container, kind)
                assert port_number(container, http["port"]) == args.health_port, name
                assert http["path"] in PROBE_PATHS
            assert probe(container, "liveness")["path"] == "/healthz"

    def test_compose_health_checks_and_ports_match_the_commands(self) -> None:
        services = our_compose_services()
        for name, svc in services.items():
            if svc["healthcheck"].get("disable"):
                continue
            args = parse_command([str(a) for a in svc["command"]])
            port = args.port if name == "api" else args.health_port
            check = " ".join(svc["healthcheck"]["test"])
            assert f"http://127.0.0.1:{port}/readyz" in check, name
            assert svc["environment"]["HEALTHCHECK_URL"] == f"http://127.0.0.1:{port}/healthz"
        assert services["api"]["ports"] == ["8000:8000"]
        exposed = {
            int(p) for w, rest in dockerfile_instructions() if w == "EXPOSE" for p in rest.split()
        }
        assert exposed == {8000, 8081, 8082}

    def test_dockerfile_is_multi_stage_non_root_with_a_health_check(self) -> None:
        instructions = dockerfile_instructions()
        stages = [rest for word, rest in instructions if word == "FROM"]
        assert len(stages) == 2
        users = [rest for word, rest in instructions if word == "USER"]
        assert users
        assert users[-1].split(":")[0] not in {"0", "root"}
        assert any(word == "HEALTHCHECK" for word, _ in instructions)
        assert dockerfile_env()["HEALTHCHECK_URL"].endswith(":8000/healthz")
        for word, rest in instructions:
            if word == "COPY" and not rest.startswith("--from"):
                for source in rest.split()[:-1]:
                    assert (ROOT / source).exists(), source


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(host: str, port: int, path: str) -> tuple[int, dict[str, Any]]:
    """GET over real HTTP; (status, JSON body)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=3) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(host: str, port: int, path: str, status: int, deadline: float) -> dict[str, Any]:
    """Poll ``path`` until it answers ``status``; return the body."""
    last: object = None
    while time.monotonic() < deadline:
        try:
            got, body = http_get(host, port, path)
        except OSError as exc:
            last = exc
        else:
            if got == status:
                return body
            last = (got, body)
        time.sleep(0.2)
    raise AssertionError(f"{path} on {host}:{port} never answered {status}: {last}")


@pytest.fixture(scope="module")
def worker_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The real ingest and projections processes, started with the manifests' arguments.

    Only the health port is moved to a free one; the store is a fresh SQLite
    file and Kafka an address nobody listens on, so the worker stays alive and
    not ready. Both are asked over 127.0.0.2, which only reaches them if they
    honour ``--health-host 0.0.0.0``.
    """
    store = f"sqlite:///{tmp_path_factory.mktemp('infra') / 'store.db'}"
    started: dict[str, Any] = {}
    for name in ("ingest", "projections"):
        container = named("Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        argv = [str(a) for a in container["args"]]
        port = free_port()
        argv[argv.index("--health-port") + 1] = str(port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRACTICE_EVENTS_")}
        env.update(container_env(container))
        env["PRACTICE_EVENTS_STORE"] = store
        env["PRACTICE_EVENTS_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{free_port()}"
        env["PRACTICE_EVENTS_LOG_LEVEL"] = "warning"
        process = subprocess.Popen(
            [sys.executable, "-m", "practice_events.cli", *argv],
            env=env,
            cwd=tmp_path_factory.getbasetemp(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        started[name] = {"process": process, "port": port, "container": container}
    try:
        yield started
    finally:
        for info in started.values():
            if info["process"].poll() is None:
                info["process"].kill()
                info["process"].wait(10)


@pytest.mark.slow
class TestWorkerProcesses:
    def test_probes_answer_as_the_manifests_expect_and_sigterm_stops_them(
        self, worker_processes: dict[str, Any]
    ) -> None:
        deadline = time.monotonic() + 90
        for name, info in worker_processes.items():
            container, port = info["container"], info["port"]
            for kind in ("liveness", "readiness"):
                assert probe(container, kind)["path"] in PROBE_PATHS
            alive = wait_for("127.0.0.2", port, "/healthz", 200, deadline)
            assert alive == {"status": "alive"}, name
        # projections: every runner thread of the projections it owns running → ready
        ready = wait_for(
            "127.0.0.2", worker_processes["projections"]["port"], "/readyz", 200, deadline
        )
        assert ready["ready"] is True
        owned = owned_projections(worker_processes["projections"]["container"]["args"])
        assert sorted(ready["projections"]) == sorted(owned)
        assert {"closed_loop", "scorecards"} <= set(owned)
        assert all(p["status"] == "running" for p in ready["projections"].values())
        # ingest: alive but not ready while the broker cannot be reached
        status, body = http_get("127.0.0.2", worker_processes["ingest"]["port"], "/readyz")
        assert (status, body["ready"]) == (503, False)
        for info in worker_processes.values():
            info["process"].send_signal(signal.SIGTERM)
        for name, info in worker_processes.items():
            code = info["process"].wait(30)
            stderr = info["process"].stderr.read().decode(errors="replace")
            assert code == 0, f"{name} exited {code}: {stderr[-2000:]}"


# -- the database set-up job ---------------------------------------------------------------------

STORE_TABLES = {"events", "tracking", "ingested_keys", "rejections", "seals", "seal_checkpoints"}


class TestStoreInit:
    def test_creates_every_shards_schema_and_tables_on_postgresql_once(self, pg_url: str) -> None:
        settings = Settings(
            store=f"{pg_url}?schema=province",
            shards={"WLY": f"{pg_url}?schema=district_wly", "CLX": f"{pg_url}?schema=district_clx"},
        )
        first = init_stores(settings)
        assert [(r.backend, r.schema, r.schema_created) for r in first] == [
            ("postgresql", "province", True),
            ("postgresql", "district_wly", True),
            ("postgresql", "district_clx", True),
        ]
        for result in first:
            assert {f"practiceevents_{t}" for t in STORE_TABLES} | {"api_tokens"} <= set(
                result.tables
            )
            assert result.last_position == 0
        again = init_stores(settings)
        assert [r.schema_created for r in again] == [False, False, False]
        assert [r.tables for r in again] == [r.tables for r in first]

    def test_the_cli_creates_the_sqlite_store_and_prints_json(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "nested" / "store.db"
        code = main(["store", "init", "--store", f"sqlite:///{path}", "--json"])
        assert code == EXIT_OK
        [result] = json.loads(capsys.readouterr().out)
        assert result["backend"] == "sqlite"
        assert {"stored_events", "api_tokens"} | STORE_TABLES - {"events"} <= set(result["tables"])
        assert path.is_file()

    def test_an_unreachable_database_is_exit_3_after_the_wait(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        url = f"postgresql://postgres@127.0.0.1:{free_port()}/practice"
        started = time.monotonic()
        code = main(["store", "init", "--store", url, "--wait", "1.5"])
        waited = time.monotonic() - started
        assert code == EXIT_UNAVAILABLE
        assert "unavailable" in capsys.readouterr().err
        assert 1.0 <= waited < 10

    def test_a_database_that_does_not_exist_is_a_configuration_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        ensure_postgres()
        missing = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/no_such_database_{os.getpid()}"
        code = main(["store", "init", "--store", missing, "--wait", "30"])
        assert code == EXIT_USAGE
        assert "does not exist" in capsys.readouterr().err

#!/usr/bin/env python3
"""Checks compose/ and deploy/k8s/ against the code (run by scripts/check-deploy.sh).

No Docker engine or cluster is needed: `docker-compose config` renders the compose file,
`kubectl kustomize` the Kubernetes manifests, and the rest are structural checks on what they
render, against the code: the SwiftPM products, the services' default ports
(PlatformServiceName.swift) and the environment variables the Swift sources read.
Prints one line per check and `deploy checks: N of M passed`; exits 1 when any failed.
"""
import os
import re
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPOSE = os.path.join(ROOT, "compose", "docker-compose.yml")
DOCKERFILE = os.path.join(ROOT, "compose", "Dockerfile")
PROMETHEUS = os.path.join(ROOT, "compose", "prometheus.yml")
K8S = os.path.join(ROOT, "deploy", "k8s")
OVERLAYS = ["base", "overlays/production"]
SANDBOX = "code-sandbox"
# Products the images carry besides the six services.
EXTRA_PRODUCTS = ["sandbox-exec", "platform"]
# Variables that are not the services' own but that the images or the runtime read.
RUNTIME_VARIABLES = {"TMPDIR"}

results = []


def check(name, problems):
    """Records a check: `problems` is a list of strings (empty: passed)."""
    problems = [p for p in problems if p]
    results.append((name, problems))
    print(("ok    " if not problems else "FAIL  ") + name)
    for problem in problems[:20]:
        print("        " + problem)


def run(command, env=None):
    full = dict(os.environ)
    full.update(env or {})
    done = subprocess.run(command, cwd=ROOT, env=full, capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr


# ------------------------------------------------------------------------------------ the code
def swift_sources():
    for top in ("Shared", "Services"):
        for directory, _, files in os.walk(os.path.join(ROOT, top)):
            for file in files:
                if file.endswith(".swift"):
                    yield os.path.join(directory, file)


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


services_file = read(os.path.join(ROOT, "Shared/Core/Config/PlatformServiceName.swift"))
# case codeSandbox = "code-sandbox" / case agent
cases = re.findall(r'^\s*case (\w+)(?: = "([^"]+)")?\s*$', services_file.split("defaultPort")[0], re.M)
SERVICES = [raw or name for name, raw in cases]
ports_block = services_file.split("var defaultPort")[1].split("var databaseName")[0]
case_ports = dict(re.findall(r"case \.(\w+): (\d+)", ports_block))
PORTS = {raw or name: int(case_ports[name]) for name, raw in cases}


def address_variable(service):
    return service.upper().replace("-", "_") + "_ADDR"


CODE_VARIABLES = set(RUNTIME_VARIABLES)
for source in swift_sources():
    CODE_VARIABLES.update(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"', read(source)))
# Names the code builds: <SERVICE>_ADDR (PlatformServiceName.addressVariable) and
# RATE_LIMIT_<CLASS>_PER_MINUTE (ServiceConfiguration).
CODE_VARIABLES.update(address_variable(s) for s in SERVICES)
configuration = read(os.path.join(ROOT, "Shared/Core/Config/ServiceConfiguration.swift"))
for classes in re.findall(r"for rpcClass in \[([^\]]*)\]", configuration):
    CODE_VARIABLES.update(f"RATE_LIMIT_{c.upper()}_PER_MINUTE" for c in re.findall(r'"(\w+)"', classes))
# HOST and PORT are read by name too; the regex above wants an underscore.
for short in ("HOST", "PORT"):
    if re.search(rf'environment\.\w+\("{short}"', configuration):
        CODE_VARIABLES.add(short)

package = read(os.path.join(ROOT, "Package.swift"))
PRODUCTS = set(re.findall(r'\.executable\(name: "([^"]+)"', package))

check("the six services of PlatformServiceName are SwiftPM executables with default ports",
      [f"{s} is not an executable product of Package.swift" for s in SERVICES if s not in PRODUCTS]
      + ([f"expected 6 services, found {SERVICES}"] if len(SERVICES) != 6 else [])
      + [f"{s} has no default port" for s in SERVICES if s not in PORTS])
check("the images' other products (sandbox-exec, platform CLI) exist in Package.swift",
      [f"{p} is not an executable product of Package.swift (the Dockerfile builds it)" for p in EXTRA_PRODUCTS
       if p not in PRODUCTS])


def unknown_variables(names, where):
    return [f"{where}: {n} is read nowhere in Shared/ or Services/" for n in sorted(names) if n not in CODE_VARIABLES]


# ------------------------------------------------------------------------------------ compose
DUMMIES = {v: "dummy" for v in ("JWT_PUBLIC_KEYS", "JWT_PRIVATE_KEY", "SQL_ENCRYPTION_KEY", "AGENT_ENCRYPTION_KEY",
                                 "WORKFLOW_ENCRYPTION_KEY")}
code, out, err = run(["docker-compose", "-f", COMPOSE, "config", "-q"], DUMMIES)
check("docker-compose config -q accepts compose/docker-compose.yml", [] if code == 0 else [err.strip() or out.strip()])
code, rendered, err = run(["docker-compose", "-f", COMPOSE, "--profile", "observability", "config"], DUMMIES)
check("the observability profile renders", [] if code == 0 else [err.strip()])
compose = yaml.safe_load(rendered) if code == 0 else {"services": {}}
missing_guard = []
for variable in DUMMIES:
    env = {k: v for k, v in DUMMIES.items() if k != variable}
    saved = os.environ.pop(variable, None)
    code, _, err = run(["docker-compose", "-f", COMPOSE, "config", "-q"], env)
    if saved is not None:
        os.environ[variable] = saved
    if code == 0 or variable not in err:
        missing_guard.append(f"compose starts without {variable}")
check("compose refuses to start without each required secret", missing_guard)

csvc = compose.get("services", {})
ours = {name: s for name, s in csvc.items() if "build" in s}
check("compose builds exactly the six services, each its own Dockerfile target",
      [f"compose has no service {s}" for s in SERVICES if s not in ours]
      + [f"{n} builds target {s['build'].get('target')}" for n, s in ours.items() if s["build"].get("target") != n]
      + [f"{n} is not a service of PlatformServiceName" for n in ours if n not in SERVICES])

dockerfile = read(DOCKERFILE)
targets = set(re.findall(r"^FROM \S+ AS (\S+)", dockerfile, re.M))
check("the Dockerfile: static Swift runtime, every target, non-root, the platform CLI",
      [f"no Dockerfile target {s}" for s in SERVICES if s not in targets]
      + ([] if "--static-swift-stdlib" in dockerfile else ["no --static-swift-stdlib"])
      + ([] if re.search(r"--product \"?\$\{product\}\"?", dockerfile) and "sandbox-exec platform" in dockerfile
         else ["the build stage does not build sandbox-exec and platform"])
      + ([] if "/usr/local/bin/platform" in dockerfile else ["platform is not copied to /usr/local/bin"])
      + [f"target {s} does not end as USER 10001" for s in SERVICES
         if not re.search(rf"^FROM runtime AS {re.escape(s)}\n(?:(?!^FROM ).*\n)*?USER 10001:10001", dockerfile, re.M)])

problems = []
for name, service in ours.items():
    env = service.get("environment", {}) or {}
    problems += unknown_variables(env.keys(), f"compose {name}")
check("every variable compose gives a service is read by the code", problems)

problems = []
for name, service in ours.items():
    env = service.get("environment", {}) or {}
    port = PORTS.get(name)
    if str(env.get("PORT")) != str(port):
        problems.append(f"{name}: PORT={env.get('PORT')}, its default is {port}")
    if str(env.get("ADMIN_PORT")) != str((port or 0) + 1000):
        problems.append(f"{name}: ADMIN_PORT={env.get('ADMIN_PORT')}, expected {(port or 0) + 1000}")
    # docker-compose 1.x renders "host_ip:published:target/tcp", 2.x a mapping.
    targets = [p.get("target") if isinstance(p, dict) else int(str(p).split("/")[0].rsplit(":", 1)[-1])
               for p in service.get("ports", [])]
    if port not in targets:
        problems.append(f"{name}: port {port} is not published")
    problems += [f"{name}: publishes {t}, not its port {port}" for t in targets if t != port]
    for variable, value in env.items():
        if variable.endswith("_ADDR"):
            host, _, peer_port = str(value).rpartition(":")
            if host not in PORTS or str(PORTS[host]) != peer_port:
                problems.append(f"{name}: {variable}={value} is not a service at its port")
            elif address_variable(host) != variable:
                problems.append(f"{name}: {variable} points at {host}")
    if not env.get("DATABASE_URL", "").endswith("/" + {"code-sandbox": "code_db", "text-to-sql": "sql_db"}.get(name, name + "_db")):
        problems.append(f"{name}: DATABASE_URL is not its own database")
check("ports and peer addresses match the services' defaults", problems)

problems = []
for name, service in ours.items():
    port = PORTS.get(name)
    test = (service.get("healthcheck") or {}).get("test")
    if test != ["CMD", "platform", "health", "--address", f"127.0.0.1:{port}"]:
        problems.append(f"{name}: healthcheck is {test}")
    depends = service.get("depends_on") or {}
    for store in ("postgres", "redis"):
        if (depends.get(store) or {}).get("condition") != "service_healthy":
            problems.append(f"{name}: does not wait for {store} to be healthy")
    if name != "agent":  # the agent calls the others per request only; they need it first
        for variable in (service.get("environment") or {}):
            if variable.endswith("_ADDR"):
                peer = str(service["environment"][variable]).rpartition(":")[0]
                if (depends.get(peer) or {}).get("condition") != "service_healthy":
                    problems.append(f"{name}: calls {peer} but does not wait for it to be healthy")
check("healthchecks use `platform health`; start-up waits for healthy dependencies", problems)

problems = []
for name, service in ours.items():
    if service.get("privileged"):
        problems.append(f"{name}: privileged")
    if service.get("cap_add"):
        problems.append(f"{name}: cap_add {service['cap_add']}")
    if service.get("cap_drop") != ["ALL"]:
        problems.append(f"{name}: does not drop all capabilities")
    if not service.get("read_only"):
        problems.append(f"{name}: root filesystem is writable")
    options = service.get("security_opt") or []
    if "no-new-privileges:true" not in options:
        problems.append(f"{name}: no no-new-privileges")
    loosened = [o for o in options if "unconfined" in o]
    if name == SANDBOX:
        for needed in ("seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"):
            if needed not in options:
                problems.append(f"{name}: bubblewrap needs {needed}")
    elif loosened:
        problems.append(f"{name}: {loosened} (only the sandbox may)")
check("compose hardening: no privileges, the sandbox's exceptions only where bubblewrap needs them", problems)

with open(PROMETHEUS, encoding="utf-8") as handle:
    prometheus = yaml.safe_load(handle)
scraped = {t for job in prometheus.get("scrape_configs", []) for sc in job.get("static_configs", [])
           for t in sc.get("targets", [])}
expected = {f"{n}:{s['environment'].get('ADMIN_PORT')}" for n, s in ours.items()}
observability = []
for tool in ("jaeger", "prometheus"):
    if "observability" not in (csvc.get(tool, {}).get("profiles") or []):
        observability.append(f"{tool} is not in the observability profile")
if str((csvc.get("jaeger", {}).get("environment") or {}).get("COLLECTOR_OTLP_ENABLED")).lower() != "true":
    observability.append("Jaeger does not accept OTLP")
observability += [f"{n}: no OTEL_EXPORTER_OTLP_ENDPOINT" for n, s in ours.items()
                  if "OTEL_EXPORTER_OTLP_ENDPOINT" not in s.get("environment", {})]
observability += [f"Prometheus does not scrape {t}" for t in sorted(expected - scraped)]
observability += [f"Prometheus scrapes {t}, no service's admin port" for t in sorted(scraped - expected)]
check("observability: Jaeger takes OTLP, Prometheus scrapes every admin port", observability)


# ------------------------------------------------------------------------------------ kubernetes
def labels_match(selector, labels):
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
    return True


secret_examples = {}
with open(os.path.join(K8S, "base", "secrets.example.yaml"), encoding="utf-8") as handle:
    for document in yaml.safe_load_all(handle):
        if document:
            secret_examples[document["metadata"]["name"]] = set((document.get("stringData") or {}).keys())

kubectl = os.environ.get("KUBECTL", "kubectl")
for overlay in OVERLAYS:
    code, out, err = run([kubectl, "kustomize", os.path.join(K8S, overlay)])
    check(f"kubectl kustomize deploy/k8s/{overlay} renders", [] if code == 0 else [err.strip()])
    if code != 0:
        continue
    objects = [o for o in yaml.safe_load_all(out) if o]
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    configmaps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    policies = by_kind.get("NetworkPolicy", [])
    where = f"[{overlay}]"

    check(f"{where} a Deployment per service and nothing else",
          [f"no Deployment {s}" for s in SERVICES if s not in deployments]
          + [f"Deployment {d} is not a service" for d in deployments if d not in SERVICES])

    probes, security, resources, companions, env_problems, refs, network = [], [], [], [], [], [], []
    for name, deployment in deployments.items():
        port = PORTS.get(name)
        pod = deployment["spec"]["template"]["spec"]
        labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        containers = pod.get("containers", [])
        if len(containers) != 1:
            probes.append(f"{name}: {len(containers)} containers")
            continue
        c = containers[0]
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
        if ports.get("grpc") != port:
            probes.append(f"{name}: grpc containerPort {ports.get('grpc')}, its port is {port}")
        for probe in ("livenessProbe", "readinessProbe"):
            grpc = (c.get(probe) or {}).get("grpc") or {}
            if grpc.get("port") != port:
                probes.append(f"{name}: {probe} is not a gRPC probe on {port}")

        pod_sc, sc = pod.get("securityContext") or {}, c.get("securityContext") or {}
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            security.append(f"{name}: runAsNonRoot is not set")
        if (sc.get("runAsUser", pod_sc.get("runAsUser")) or 0) == 0:
            security.append(f"{name}: runs as uid 0")
        if sc.get("readOnlyRootFilesystem") is not True:
            security.append(f"{name}: root filesystem is writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            security.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            security.append(f"{name}: privileged")
        capabilities = sc.get("capabilities") or {}
        if capabilities.get("drop") != ["ALL"] or capabilities.get("add"):
            security.append(f"{name}: capabilities are not `drop: [ALL]` with nothing added")
        if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            security.append(f"{name}: the pod's seccomp profile is not RuntimeDefault")
        loosened = {k: v for k, v in (("seccompProfile", (sc.get("seccompProfile") or {}).get("type")),
                                      ("appArmorProfile", (sc.get("appArmorProfile") or {}).get("type")),
                                      ("procMount", sc.get("procMount"))) if v not in (None, "RuntimeDefault", "Default")}
        if name == SANDBOX:
            if loosened != {"seccompProfile": "Unconfined", "appArmorProfile": "Unconfined", "procMount": "Unmasked"}:
                security.append(f"{name}: the sandbox's exception is {loosened}, expected seccomp and AppArmor "
                                "Unconfined and an unmasked /proc (what bubblewrap needs)")
            if pod.get("hostUsers") is not False:
                security.append(f"{name}: an unmasked /proc needs the pod's own user namespace (hostUsers: false)")
        elif loosened:
            security.append(f"{name}: {loosened} (only the sandbox may)")
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        if "emptyDir" not in volumes.get(mounts.get("/tmp"), {}):
            security.append(f"{name}: no emptyDir at /tmp under the read-only root")

        requests = (c.get("resources") or {}).get("requests") or {}
        limits = (c.get("resources") or {}).get("limits") or {}
        if not (requests.get("cpu") and requests.get("memory") and limits.get("memory")):
            resources.append(f"{name}: needs cpu and memory requests and a memory limit (the HPA works on requests)")

        def selects(obj):
            return labels_match(obj["spec"].get("selector"), labels)
        services = [s for s in by_kind.get("Service", []) if s["spec"].get("selector")
                    and all(labels.get(k) == v for k, v in s["spec"]["selector"].items())]
        if not any(s["metadata"]["name"] == name and any(p.get("port") == port for p in s["spec"].get("ports", []))
                   for s in services):
            companions.append(f"{name}: no Service {name} on port {port}")
        hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", [])
                if h["spec"]["scaleTargetRef"].get("kind") == "Deployment" and h["spec"]["scaleTargetRef"].get("name") == name]
        if not hpas:
            companions.append(f"{name}: no HorizontalPodAutoscaler")
        for h in hpas:
            spec = h["spec"]
            if not any(m.get("resource", {}).get("name") == "cpu" for m in spec.get("metrics", [])):
                companions.append(f"{name}: its HPA does not scale on CPU")
            if not 2 <= spec.get("minReplicas", 1) <= spec.get("maxReplicas", 0):
                companions.append(f"{name}: HPA bounds {spec.get('minReplicas')}..{spec.get('maxReplicas')}")
        if not any(selects(p) for p in by_kind.get("PodDisruptionBudget", [])):
            companions.append(f"{name}: no PodDisruptionBudget")

        # Variables: known to the code; ADDRs point at Services; references exist.
        env = c.get("env", [])
        names = {e["name"] for e in env}
        for source in c.get("envFrom", []):
            reference = (source.get("configMapRef") or {}).get("name")
            if reference not in configmaps:
                refs.append(f"{name}: envFrom ConfigMap {reference} is not rendered")
            else:
                names |= set((configmaps[reference].get("data") or {}).keys())
        env_problems += unknown_variables(names, f"{name}")
        callees = set()
        for e in env:
            if e["name"].endswith("_ADDR"):
                host, _, peer_port = str(e.get("value", "")).rpartition(":")
                callees.add(host)
                if host not in PORTS or str(PORTS[host]) != peer_port or address_variable(host) != e["name"]:
                    env_problems.append(f"{name}: {e['name']}={e.get('value')} is not that service at its port")
            secret = (e.get("valueFrom") or {}).get("secretKeyRef")
            if secret and secret.get("key") not in secret_examples.get(secret.get("name"), set()):
                refs.append(f"{name}: Secret {secret.get('name')}/{secret.get('key')} is not in secrets.example.yaml")
        for volume in pod.get("volumes", []):
            if "secret" in volume and volume["secret"]["secretName"] not in secret_examples:
                refs.append(f"{name}: Secret volume {volume['secret']['secretName']} is not in secrets.example.yaml")
            if "configMap" in volume and volume["configMap"]["name"] not in configmaps:
                refs.append(f"{name}: ConfigMap volume {volume['configMap']['name']} is not rendered")
        signer = "JWT_PRIVATE_KEY" in names or any("signing" in v.get("secret", {}).get("secretName", "")
                                                    for v in pod.get("volumes", []))
        if signer != (name == "agent"):
            refs.append(f"{name}: {'has' if signer else 'lacks'} the token signing key (the agent's alone)")

        # Network: some policy selects it with Egress; its pod peers are exactly its callees.
        mine = [p for p in policies if labels_match(p["spec"].get("podSelector"), labels)]
        if not any(p["metadata"]["name"] == name and "Egress" in p["spec"].get("policyTypes", []) for p in mine):
            network.append(f"{name}: no NetworkPolicy of its own restricting egress")
        peers = set()
        for p in mine:
            for rule in p["spec"].get("egress") or []:
                if not rule.get("to"):
                    network.append(f"{name}: policy {p['metadata']['name']} allows egress to anywhere")
                for peer in rule.get("to") or []:
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        peers.add((peer["podSelector"].get("matchLabels") or {}).get("app.kubernetes.io/name"))
        if peers != callees:
            network.append(f"{name}: may reach {sorted(peers)}, calls {sorted(callees)}")
        if name == SANDBOX:
            for p in mine:
                for rule in p["spec"].get("egress") or []:
                    ports = {(q.get("port"), q.get("protocol", "TCP")) for q in rule.get("ports") or []}
                    for peer in rule.get("to") or []:
                        block = peer.get("ipBlock")
                        dns = ports and ports <= {(53, "UDP"), (53, "TCP")}
                        datastores = ports and ports <= {(5432, "TCP"), (6379, "TCP")}
                        if block and not datastores:
                            network.append(f"{name}: egress to {block['cidr']} on {sorted(ports) or 'any port'}")
                        if "namespaceSelector" in peer and not dns:
                            network.append(f"{name}: egress to another namespace beyond DNS")

    check(f"{where} gRPC liveness and readiness probes on each service's port", probes)
    check(f"{where} securityContext: non-root, read-only root, no capabilities; only the sandbox's exception",
          security)
    check(f"{where} resources on every container", resources)
    check(f"{where} each Deployment has its Service, a CPU HPA and a PodDisruptionBudget", companions)
    check(f"{where} every variable is read by the code; peer addresses point at services", env_problems)
    check(f"{where} ConfigMaps and Secrets referenced exist; the signing key reaches the agent alone", refs
          + [f"a Secret is rendered ({s['metadata']['name']}): apply would overwrite the real one"
             for s in by_kind.get("Secret", [])])
    default_deny = [p for p in policies if p["spec"].get("podSelector", {}).get("matchLabels", {}).keys()
                    <= {"app.kubernetes.io/part-of"} and not p["spec"].get("ingress") and not p["spec"].get("egress")
                    and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}]
    check(f"{where} NetworkPolicies: default deny; each service reaches only what it calls; the sandbox only "
          "DNS, PostgreSQL, Redis and the agent",
          network + ([] if default_deny else ["no default-deny policy"]))
    if overlay != "base":
        images = [c["image"] for d in deployments.values() for c in d["spec"]["template"]["spec"]["containers"]]
        check(f"{where} images have pinned tags",
              [f"{i} has no pinned tag" for i in images if ":" not in i.rsplit("/", 1)[-1] or i.endswith(":latest")])

passed = sum(1 for _, problems in results if not problems)
print(f"deploy checks: {passed} of {len(results)} passed")
sys.exit(0 if passed == len(results) else 1)

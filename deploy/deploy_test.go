// Tests of the deployment files: every manifest parses, the Kubernetes
// objects hold together (selectors, Services, PodDisruptionBudgets, config
// maps, probes, resources, grace periods), the ClickHouse cluster is the one
// the schema and the manifests name, and every POLIS_* variable and flag of
// a container running polis is a real flag of the command it runs, checked
// against the binary built from this tree.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/polis-platform/polis/storage/schema"
)

var update = flag.Bool("update", false, "rewrite clickhouse/cluster.sql from storage/schema")

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// obj is one decoded YAML document.
type obj = map[string]any

// yamlDocs decodes every document of a YAML file (anchors and merge keys
// resolved), failing the test on a syntax error.
func yamlDocs(t *testing.T, path string) []obj {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []obj
	for {
		var d obj
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			out = append(out, d)
		}
	}
}

// get walks a decoded document: get(o, "spec", "template", "spec").
func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(obj)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v any, path ...string) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func strMap(v any, path ...string) map[string]string {
	out := map[string]string{}
	if m, ok := get(v, path...).(obj); ok {
		for k, v := range m {
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

func TestEveryFileParses(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml":
			if len(yamlDocs(t, path)) == 0 {
				t.Errorf("%s has no document", path)
			}
		case ".json":
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		case ".xml":
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			var v xmlNode
			if err := xml.Unmarshal(b, &v); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		default:
			return nil
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 15 {
		t.Fatalf("only %d manifests found under deploy/", n)
	}
}

// k8sObjects are the documents of k8s/*.yaml.
func k8sObjects(t *testing.T) []obj {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no k8s/*.yaml: %v", err)
	}
	var out []obj
	for _, f := range files {
		out = append(out, yamlDocs(t, f)...)
	}
	return out
}

var apiVersions = map[string]string{
	"Namespace": "v1", "Service": "v1", "ConfigMap": "v1", "Secret": "v1",
	"Deployment": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1", "PodDisruptionBudget": "policy/v1",
}

func named(objs []obj, kind, name string) obj {
	for _, o := range objs {
		if o["kind"] == kind && str(o, "metadata", "name") == name {
			return o
		}
	}
	return nil
}

func podSpec(o obj) any { return get(o, "spec", "template", "spec") }

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func containersOf(o obj) []any {
	return append(slices.Clone(list(podSpec(o), "initContainers")), list(podSpec(o), "containers")...)
}

// The Kubernetes objects hold together: known kinds, selectors that select,
// a headless Service per StatefulSet, a PodDisruptionBudget per replicated
// workload, resources and probes on every long-running container, and
// config maps made by the kustomization.
func TestKubernetes_Objects(t *testing.T) {
	objs := k8sObjects(t)
	kust := yamlDocs(t, "kustomization.yaml")[0]
	generated := map[string]bool{}
	for _, g := range list(kust, "configMapGenerator") {
		generated[str(g, "name")] = true
		for _, f := range list(g, "files") {
			if _, err := os.Stat(fmt.Sprint(f)); err != nil {
				t.Errorf("kustomization: config map %s: %v", str(g, "name"), err)
			}
		}
	}
	var resources []string
	for _, r := range list(kust, "resources") {
		resources = append(resources, fmt.Sprint(r))
	}
	files, _ := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	slices.Sort(resources)
	if !slices.Equal(resources, files) {
		t.Errorf("kustomization resources %v; want every k8s/*.yaml %v", resources, files)
	}

	var workloads []obj
	for _, o := range objs {
		kind, name := fmt.Sprint(o["kind"]), str(o, "metadata", "name")
		want, ok := apiVersions[kind]
		if !ok {
			t.Errorf("%s %s: kind not expected here", kind, name)
			continue
		}
		if o["apiVersion"] != want || name == "" {
			t.Errorf("%s %q: apiVersion %v, want %s and a name", kind, name, o["apiVersion"], want)
		}
		if kind == "Deployment" || kind == "StatefulSet" || kind == "Job" {
			workloads = append(workloads, o)
		}
	}
	labelsOf := func(o obj) map[string]string { return strMap(o, "spec", "template", "metadata", "labels") }
	for _, w := range workloads {
		kind, name := w["kind"], str(w, "metadata", "name")
		if kind != "Job" && !selects(strMap(w, "spec", "selector", "matchLabels"), labelsOf(w)) {
			t.Errorf("%s %s: selector %v does not select its pods %v", kind, name, strMap(w, "spec", "selector", "matchLabels"), labelsOf(w))
		}
		for _, c := range containersOf(w) {
			cname := str(c, "name")
			if cname == "" || str(c, "image") == "" {
				t.Errorf("%s %s: a container without a name or an image", kind, name)
			}
			for _, r := range []string{"requests.cpu", "requests.memory", "limits.memory"} {
				p := strings.Split(r, ".")
				if get(c, "resources", p[0], p[1]) == nil {
					t.Errorf("%s %s, container %s: no resources.%s", kind, name, cname, r)
				}
			}
		}
		if kind != "Job" {
			for _, c := range list(podSpec(w), "containers") {
				if get(c, "readinessProbe") == nil || get(c, "livenessProbe") == nil {
					t.Errorf("%s %s, container %s: want a readiness and a liveness probe", kind, name, str(c, "name"))
				}
			}
		}
		for _, v := range list(podSpec(w), "volumes") {
			if cm := str(v, "configMap", "name"); cm != "" && !generated[cm] {
				t.Errorf("%s %s: volume %s names config map %s, which the kustomization does not make", kind, name, str(v, "name"), cm)
			}
		}
		if kind == "StatefulSet" {
			svc := named(objs, "Service", str(w, "spec", "serviceName"))
			if svc == nil || str(svc, "spec", "clusterIP") != "None" || !selects(strMap(svc, "spec", "selector"), labelsOf(w)) {
				t.Errorf("StatefulSet %s: want a headless Service %q selecting its pods", name, str(w, "spec", "serviceName"))
			}
		}
		if replicas, _ := get(w, "spec", "replicas").(int); replicas > 1 {
			found := false
			for _, p := range objs {
				if p["kind"] == "PodDisruptionBudget" && selects(strMap(p, "spec", "selector", "matchLabels"), labelsOf(w)) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s %s: %d replicas and no PodDisruptionBudget", kind, name, replicas)
			}
		}
	}
	for _, o := range objs {
		switch o["kind"] {
		case "Service", "PodDisruptionBudget":
			sel := strMap(o, "spec", "selector")
			if o["kind"] == "PodDisruptionBudget" {
				sel = strMap(o, "spec", "selector", "matchLabels")
			}
			n := 0
			for _, w := range workloads {
				if selects(sel, labelsOf(w)) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s %s: selector %v selects %d workloads; want 1", o["kind"], str(o, "metadata", "name"), sel, n)
			}
		}
	}
}

// drainSeconds is how long `polis serve` gives its components to stop on
// SIGTERM: the stop timeout it passes to Platform.Wait.
func drainSeconds(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "cmd", "polis", "serve.go"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`p\.Wait\(ctx, (\d+) ?\* ?time\.Second\)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("cmd/polis/serve.go: the stop timeout passed to p.Wait moved; teach this test where it is")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func envOf(c any) map[string]string {
	out := map[string]string{}
	for _, e := range list(c, "env") {
		v := str(e, "value")
		if get(e, "valueFrom") != nil {
			v = "<from " + fmt.Sprint(get(e, "valueFrom")) + ">"
		}
		out[str(e, "name")] = v
	}
	return out
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// The polis Deployment: probes on the real health endpoints, on the port it
// serves HTTP on; a grace period that covers preStop and the drain; a
// budget that keeps a majority; MQTT behind a LoadBalancer.
func TestKubernetes_Polis(t *testing.T) {
	objs := k8sObjects(t)
	d := named(objs, "Deployment", "polis")
	if d == nil {
		t.Fatal("no Deployment polis")
	}
	replicas, _ := get(d, "spec", "replicas").(int)
	if replicas < 3 {
		t.Errorf("polis: %d replicas; want at least 3", replicas)
	}
	c := list(podSpec(d), "containers")[0]
	env := envOf(c)
	ports := map[string]string{}
	for _, p := range list(c, "ports") {
		ports[str(p, "name")] = fmt.Sprint(get(p, "containerPort"))
	}
	if ports["http"] != port(env["POLIS_HTTP_ADDR"]) || ports["mqtt"] != port(env["POLIS_MQTT_ADDR"]) {
		t.Errorf("polis: container ports %v do not match POLIS_HTTP_ADDR %q and POLIS_MQTT_ADDR %q", ports, env["POLIS_HTTP_ADDR"], env["POLIS_MQTT_ADDR"])
	}
	for probe, path := range map[string]string{"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got, p := str(c, probe, "httpGet", "path"), fmt.Sprint(get(c, probe, "httpGet", "port")); got != path || (p != "http" && p != ports["http"]) {
			t.Errorf("polis %s: GET %s on port %s; want GET %s on the HTTP port", probe, got, p, path)
		}
	}
	for _, want := range []string{"POLIS_KAFKA_BROKERS", "POLIS_CLICKHOUSE", "POLIS_HTTP_ADVERTISE"} {
		if env[want] == "" {
			t.Errorf("polis: %s unset (without it: the embedded Kafka, a local ClickHouse, redirects nobody can follow)", want)
		}
	}
	preStop := 0
	if cmd := list(c, "lifecycle", "preStop", "exec", "command"); len(cmd) == 2 && cmd[0] == "sleep" {
		preStop, _ = strconv.Atoi(fmt.Sprint(cmd[1]))
	}
	grace, _ := get(podSpec(d), "terminationGracePeriodSeconds").(int)
	if drain := drainSeconds(t); grace < preStop+drain+5 {
		t.Errorf("polis: terminationGracePeriodSeconds %d; want at least preStop %d s + the drain %d s + 5 s", grace, preStop, drain)
	} else {
		t.Logf("grace %d s = preStop %d s + drain %d s + %d s", grace, preStop, drain, grace-preStop-drain)
	}
	pdb := named(objs, "PodDisruptionBudget", "polis")
	if min, _ := get(pdb, "spec", "minAvailable").(int); min < 1 || min >= replicas {
		t.Errorf("polis PodDisruptionBudget: minAvailable %v of %d replicas", get(pdb, "spec", "minAvailable"), replicas)
	}
	lb := named(objs, "Service", "polis-mqtt")
	if str(lb, "spec", "type") != "LoadBalancer" || len(list(lb, "spec", "ports")) == 0 ||
		fmt.Sprint(get(list(lb, "spec", "ports")[0], "port")) != "1883" {
		t.Errorf("polis-mqtt: want a LoadBalancer on 1883: %v", get(lb, "spec"))
	}
}

// composeServices returns compose.yaml's services.
func composeServices(t *testing.T) (obj, obj) {
	t.Helper()
	doc := yamlDocs(t, filepath.Join("compose", "compose.yaml"))[0]
	s, _ := doc["services"].(obj)
	if len(s) == 0 {
		t.Fatal("compose.yaml has no services")
	}
	return doc, s
}

var defaultRE = regexp.MustCompile(`\$\{[A-Z0-9_]+:-([^}]*)\}`)

// composeEnv reads a service's environment, as a map or a list.
func composeEnv(svc any) map[string]string {
	out := map[string]string{}
	switch e := get(svc, "environment").(type) {
	case obj:
		for k, v := range e {
			out[k] = fmt.Sprint(v)
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			out[k] = v
		}
	}
	return out
}

func TestCompose(t *testing.T) {
	doc, services := composeServices(t)
	volumes, _ := doc["volumes"].(obj)
	polis := 0
	for name, svc := range services {
		deps := get(svc, "depends_on")
		var names []string
		switch d := deps.(type) {
		case []any:
			for _, n := range d {
				names = append(names, fmt.Sprint(n))
			}
		case obj:
			for n := range d {
				names = append(names, n)
			}
		}
		for _, n := range names {
			if services[n] == nil {
				t.Errorf("service %s depends on %s, which is not a service", name, n)
			}
		}
		for _, v := range list(svc, "volumes") {
			src, _, _ := strings.Cut(fmt.Sprint(v), ":")
			switch {
			case strings.HasPrefix(src, "./secrets/"): // made by the operator
			case strings.HasPrefix(src, "."):
				if _, err := os.Stat(filepath.Join("compose", src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			default:
				if _, ok := volumes[src]; !ok {
					t.Errorf("service %s mounts volume %s, which is not declared", name, src)
				}
			}
		}
		if isPolis(str(svc, "image")) && slices.Equal(list(svc, "command"), []any{"serve"}) {
			polis++
			env := composeEnv(svc)
			if want := "http://" + name + ":8080"; env["POLIS_HTTP_ADVERTISE"] != want {
				t.Errorf("%s: POLIS_HTTP_ADVERTISE %q; want %q", name, env["POLIS_HTTP_ADVERTISE"], want)
			}
			if g := str(svc, "stop_grace_period"); g == "" {
				t.Errorf("%s: no stop_grace_period", name)
			} else if d, err := time.ParseDuration(g); err != nil || d < time.Duration(drainSeconds(t))*time.Second {
				t.Errorf("%s: stop_grace_period %s shorter than the drain (%d s)", name, g, drainSeconds(t))
			}
		}
	}
	if polis < 3 {
		t.Fatalf("%d polis serve services; want at least 3", polis)
	}
	// The load balancer sends MQTT to every instance, checking /readyz.
	cfg, err := os.ReadFile(filepath.Join("compose", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	var mqtt []string
	inMQTT := false
	for _, l := range strings.Split(string(cfg), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && (f[0] == "backend" || f[0] == "frontend") {
			inMQTT = f[0] == "backend" && f[1] == "polis_mqtt"
		}
		if inMQTT && len(f) >= 3 && f[0] == "server" {
			if services[f[1]] == nil || f[2] != f[1]+":1883" {
				t.Errorf("haproxy.cfg: server %s %s is not a polis service's MQTT port", f[1], f[2])
			}
			mqtt = append(mqtt, f[1])
		}
	}
	if len(mqtt) != polis || !strings.Contains(string(cfg), "option httpchk GET /readyz") {
		t.Errorf("haproxy.cfg: MQTT backend servers %v for %d instances, checked on /readyz", mqtt, polis)
	}
}

func isPolis(image string) bool {
	if m := defaultRE.FindStringSubmatch(image); m != nil {
		image = m[1]
	}
	name, _, _ := strings.Cut(image, ":")
	return name == "polis" || strings.HasSuffix(name, "/polis")
}

// Grafana gets every variable its datasource's provisioning reads.
func TestGrafana_ProvisioningVariables(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("grafana", "provisioning", "datasources", "polis.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var used []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		for _, m := range regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)\}`).FindAllStringSubmatch(l, -1) {
			if !slices.Contains(used, m[1]) {
				used = append(used, m[1])
			}
		}
	}
	if len(used) < 5 {
		t.Fatalf("datasource provisioning reads only %v", used)
	}
	_, services := composeServices(t)
	k8s := named(k8sObjects(t), "Deployment", "grafana")
	sources := map[string]map[string]string{
		"compose grafana": composeEnv(services["grafana"]),
		"k8s grafana":     envOf(list(podSpec(k8s), "containers")[0]),
	}
	for where, env := range sources {
		for _, v := range used {
			if _, ok := env[v]; !ok {
				t.Errorf("%s: %s is not set; the datasource's provisioning reads it", where, v)
			}
		}
	}
}

// xmlNode is a generic XML element.
type xmlNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Nodes   []xmlNode  `xml:",any"`
}

func (n xmlNode) all(name string) []xmlNode {
	var out []xmlNode
	for _, c := range n.Nodes {
		if c.XMLName.Local == name {
			out = append(out, c)
		}
	}
	return out
}

func (n xmlNode) one(name string) xmlNode {
	if c := n.all(name); len(c) > 0 {
		return c[0]
	}
	return xmlNode{}
}

func readXML(t *testing.T, path string) xmlNode {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var n xmlNode
	if err := xml.Unmarshal(b, &n); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

// The ClickHouse cluster is 2 shards x 2 replicas on the StatefulSet's
// pods (and compose's aliases of them), coordinated by three Keeper nodes,
// and its tables are storage/schema's cluster DDL.
func TestClickHouseCluster(t *testing.T) {
	cfg := readXML(t, filepath.Join("clickhouse", "config.d", "polis-cluster.xml"))
	cluster := cfg.one("remote_servers").one("polis")
	shards := cluster.all("shard")
	var hosts []string
	for _, s := range shards {
		if strings.TrimSpace(s.one("internal_replication").Text) != "true" || len(s.all("replica")) != 2 {
			t.Errorf("shard %v: want internal_replication and 2 replicas", s)
		}
		for _, r := range s.all("replica") {
			hosts = append(hosts, strings.TrimSpace(r.one("host").Text))
		}
	}
	want := []string{"clickhouse-0.clickhouse", "clickhouse-1.clickhouse", "clickhouse-2.clickhouse", "clickhouse-3.clickhouse"}
	if len(shards) != 2 || !slices.Equal(hosts, want) {
		t.Fatalf("cluster polis: %d shards on %v; want 2 shards of 2 replicas on %v", len(shards), hosts, want)
	}
	var zk []string
	for _, n := range cfg.one("zookeeper").all("node") {
		zk = append(zk, strings.TrimSpace(n.one("host").Text))
	}
	keeper := readXML(t, filepath.Join("clickhouse", "keeper.xml"))
	var raft []string
	for i, s := range keeper.one("keeper_server").one("raft_configuration").all("server") {
		if id := strings.TrimSpace(s.one("id").Text); id != strconv.Itoa(i+1) {
			t.Errorf("keeper server %d has id %s; want %d (KEEPER_SERVER_ID is the ordinal plus one)", i, id, i+1)
		}
		raft = append(raft, strings.TrimSpace(s.one("hostname").Text))
	}
	wantKeeper := []string{"keeper-0.keeper", "keeper-1.keeper", "keeper-2.keeper"}
	if !slices.Equal(zk, wantKeeper) || !slices.Equal(raft, wantKeeper) {
		t.Fatalf("ClickHouse's keeper nodes %v and Keeper's raft servers %v; want %v", zk, raft, wantKeeper)
	}

	// Kubernetes: the StatefulSets and headless Services these names are.
	objs := k8sObjects(t)
	for name, n := range map[string]int{"clickhouse": 4, "keeper": 3, "kafka": 3} {
		s := named(objs, "StatefulSet", name)
		if r, _ := get(s, "spec", "replicas").(int); r != n || str(s, "spec", "serviceName") != name {
			t.Errorf("StatefulSet %s: %v replicas under Service %q; want %d under %q", name, get(s, "spec", "replicas"), str(s, "spec", "serviceName"), n, name)
		}
	}
	// Compose: a service per node, aliased by the same name.
	_, services := composeServices(t)
	aliases := map[string]bool{}
	for _, svc := range services {
		for _, a := range list(svc, "networks", "default", "aliases") {
			aliases[fmt.Sprint(a)] = true
		}
	}
	for _, h := range append(append(hosts, wantKeeper...), "kafka-0.kafka", "kafka-1.kafka", "kafka-2.kafka") {
		if !aliases[h] {
			t.Errorf("compose: no service is reachable as %s", h)
		}
	}
	shard := map[string]string{}
	for i := range 4 {
		svc := services[fmt.Sprintf("clickhouse-%d", i)]
		env := composeEnv(svc)
		shard[env["CH_REPLICA"]] = env["CH_SHARD"]
	}
	for i, h := range hosts {
		if want := strconv.Itoa(i/2 + 1); shard[h] != want {
			t.Errorf("compose: %s is in shard %q; remote_servers puts it in %s", h, shard[h], want)
		}
	}

	// The tables: storage/schema's cluster DDL for this cluster.
	got, err := schema.ClusterSQL("polis", schema.DefaultDatabase, schema.Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("clickhouse", "cluster.sql")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != got {
		t.Fatalf("%s differs from storage/schema.ClusterSQL (run go test ./deploy -update)", path)
	}
}

// kubectl's own kustomize builds the kustomization, and every config map a
// pod mounts is in its output under its generated name.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed: the kustomization is checked by TestKubernetes_Objects only")
	}
	out, err := exec.Command(kubectl, "kustomize", ".").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("kubectl kustomize: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	configMaps := map[string]bool{}
	var workloads []obj
	for {
		var o obj
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if str(o, "metadata", "namespace") != "polis" && o["kind"] != "Namespace" {
			t.Errorf("%s %s is not in namespace polis", o["kind"], str(o, "metadata", "name"))
		}
		switch o["kind"] {
		case "ConfigMap":
			configMaps[str(o, "metadata", "name")] = true
		case "Deployment", "StatefulSet", "Job":
			workloads = append(workloads, o)
		}
	}
	if len(workloads) < 6 {
		t.Fatalf("kustomize built %d workloads", len(workloads))
	}
	for _, w := range workloads {
		for _, v := range list(podSpec(w), "volumes") {
			if cm := str(v, "configMap", "name"); cm != "" && !configMaps[cm] {
				t.Errorf("%s %s mounts config map %s, which the build does not have", w["kind"], str(w, "metadata", "name"), cm)
			}
		}
	}
}

// polisContainer is a container (or compose service) that runs polis.
type polisContainer struct {
	where string
	args  []string // the command line after "polis"
	env   map[string]string
}

func polisContainers(t *testing.T) []polisContainer {
	t.Helper()
	var out []polisContainer
	toArgs := func(l []any) []string {
		var s []string
		for _, a := range l {
			s = append(s, fmt.Sprint(a))
		}
		return s
	}
	for _, o := range k8sObjects(t) {
		for _, c := range containersOf(o) {
			if !isPolis(str(c, "image")) {
				continue
			}
			args := append(toArgs(list(c, "command")), toArgs(list(c, "args"))...)
			if len(args) > 0 && args[0] == "polis" {
				args = args[1:]
			}
			out = append(out, polisContainer{where: fmt.Sprintf("k8s %s %s/%s", o["kind"], str(o, "metadata", "name"), str(c, "name")),
				args: args, env: envOf(c)})
		}
	}
	_, services := composeServices(t)
	for name, svc := range services {
		if !isPolis(str(svc, "image")) {
			continue
		}
		out = append(out, polisContainer{where: "compose " + name, args: toArgs(list(svc, "command")), env: composeEnv(svc)})
	}
	return out
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// polisBinary builds cmd/polis once per test binary.
func polisBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "polis-deploy-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "polis")
		if out, err := exec.Command("go", "build", "-o", binPath, "../cmd/polis").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

var helpFlagRE = regexp.MustCompile(`^  -([a-z0-9][a-z0-9-]*)(?:\s+(\S+))?`)

// flagSet runs `polis ARGS -h` and reads the flags it lists, with their
// type (bool when none is printed).
func flagSet(t *testing.T, bin string, sub []string) map[string]string {
	t.Helper()
	out, err := exec.Command(bin, append(slices.Clone(sub), "-h")...).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	flags := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		m := helpFlagRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		typ := m[2]
		if typ == "" {
			typ = "bool"
		}
		flags[m[1]] = typ
	}
	if len(flags) == 0 {
		t.Fatalf("polis %s -h lists no flags:\n%s", strings.Join(sub, " "), out)
	}
	return flags
}

// subcommand splits a polis command line into its command words and flags.
func subcommand(args []string) (sub, flags []string) {
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			return args[:i], args[i:]
		}
	}
	return args, nil
}

// checkValue checks a value against the flag's type as -h prints it.
func checkValue(typ, v string) error {
	if strings.Contains(v, "$(") || strings.HasPrefix(v, "<from ") || strings.Contains(v, "${") {
		return nil // filled in by Kubernetes, a Secret or compose
	}
	var err error
	switch typ {
	case "bool":
		_, err = strconv.ParseBool(v)
	case "int", "int64":
		_, err = strconv.ParseInt(v, 10, 64)
	case "uint", "uint64":
		_, err = strconv.ParseUint(v, 10, 64)
	case "duration":
		_, err = time.ParseDuration(v)
	case "float64":
		_, err = strconv.ParseFloat(v, 64)
	}
	return err
}

// Every POLIS_* variable and every flag given to a polis container is a
// flag of the command it runs, with a value of the flag's type, as the
// binary built from this tree defines them (`polis CMD -h`).
func TestPolisContainers_FlagsAreReal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/polis")
	}
	bin := polisBinary(t)
	cs := polisContainers(t)
	if len(cs) < 6 { // k8s: serve, kafka init; compose: 3 x serve, kafka init
		t.Fatalf("found %d polis containers", len(cs))
	}
	sets := map[string]map[string]string{}
	checked := 0
	for _, c := range cs {
		sub, args := subcommand(c.args)
		if len(sub) == 0 {
			t.Errorf("%s: runs polis without a command", c.where)
			continue
		}
		key := strings.Join(sub, " ")
		if sets[key] == nil {
			sets[key] = flagSet(t, bin, sub)
		}
		flags := sets[key]
		for i := 0; i < len(args); i++ {
			name, val, hasVal := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
			typ, ok := flags[name]
			if !ok {
				t.Errorf("%s: polis %s has no flag %s", c.where, key, args[i])
				continue
			}
			if !hasVal && typ != "bool" && i+1 < len(args) {
				i++
				val = args[i]
			}
			if err := checkValue(typ, val); hasVal || typ != "bool" {
				if err != nil {
					t.Errorf("%s: %s %q is not a %s: %v", c.where, args[i], val, typ, err)
				}
			}
			checked++
		}
		for k, v := range c.env {
			if !strings.HasPrefix(k, "POLIS_") {
				continue
			}
			name := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, "POLIS_")), "_", "-")
			typ, ok := flags[name]
			if !ok {
				t.Errorf("%s: %s is not a flag of polis %s (no --%s)", c.where, k, key, name)
				continue
			}
			if err := checkValue(typ, v); err != nil {
				t.Errorf("%s: %s=%q is not a %s: %v", c.where, k, v, typ, err)
			}
			checked++
		}
	}
	t.Logf("%d variables and flags of %d polis containers checked against %d commands", checked, len(cs), len(sets))
}

// The check above can fail: a variable or a flag that polis does not have
// is found.
func TestPolisContainers_UnknownFlagIsCaught(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/polis")
	}
	flags := flagSet(t, polisBinary(t), []string{"serve"})
	for _, real := range []string{"kafka-brokers", "clickhouse", "http-advertise", "migrate", "http-trusted-proxies"} {
		if _, ok := flags[real]; !ok {
			t.Errorf("serve -h does not list --%s: the help parser is broken", real)
		}
	}
	for _, fake := range []string{"kafka-replication", "clickhouse-shards", "drain-timeout"} {
		if _, ok := flags[fake]; ok {
			t.Errorf("serve -h lists --%s", fake)
		}
	}
	if flags["migrate"] != "bool" || flags["kafka-partitions"] != "int" || flags["kafka-retention"] != "duration" {
		t.Errorf("flag types read wrong: migrate %s, kafka-partitions %s, kafka-retention %s", flags["migrate"], flags["kafka-partitions"], flags["kafka-retention"])
	}
	if checkValue("bool", "no") == nil || checkValue("duration", "7d") == nil || checkValue("int", "24") != nil {
		t.Error("checkValue accepts what the flag package refuses")
	}
}

// Every `polis serve` makes the cluster's tables itself: it names the
// cluster of remote_servers, migrates (no one else does), and gives the
// consumer groups the session timeout docs/capacity.md's failover assumes.
func TestPolisContainers_ClusterSchema(t *testing.T) {
	clusters := readXML(t, filepath.Join("clickhouse", "config.d", "polis-cluster.xml")).one("remote_servers").Nodes
	if len(clusters) != 1 {
		t.Fatalf("remote_servers has %d clusters; want 1", len(clusters))
	}
	cluster := clusters[0].XMLName.Local
	serves := 0
	for _, c := range polisContainers(t) {
		if sub, _ := subcommand(c.args); strings.Join(sub, " ") != "serve" {
			continue
		}
		serves++
		if got := c.env["POLIS_CLICKHOUSE_CLUSTER"]; got != cluster {
			t.Errorf("%s: POLIS_CLICKHOUSE_CLUSTER %q; want %q, the cluster of remote_servers", c.where, got, cluster)
		}
		if m, ok := c.env["POLIS_MIGRATE"]; ok && m != "true" {
			t.Errorf("%s: POLIS_MIGRATE=%s: nothing else makes the cluster's tables", c.where, m)
		}
		if got := c.env["POLIS_KAFKA_SESSION_TIMEOUT"]; got != "10s" {
			t.Errorf("%s: POLIS_KAFKA_SESSION_TIMEOUT %q; want 10s (docs/capacity.md)", c.where, got)
		}
	}
	if serves < 4 { // k8s: 1; compose: 3
		t.Fatalf("found %d polis serve containers", serves)
	}
}

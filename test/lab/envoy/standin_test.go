package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpoptsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/anypb"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// ---- (a) flags, bootstrap ----

func TestFlagsPilotAgentPasses(t *testing.T) {
	args := strings.Fields(mustRead(t, "testdata/pilot-agent-envoy-args.txt"))
	o, err := parseFlags(args, os.Stderr)
	if err != nil {
		t.Fatalf("pilot-agent's command line rejected: %v", err)
	}
	if o.configPath != "/work-dir/etc/istio/proxy/envoy-rev.json" || o.drainTimeS != 45 || o.drainStrategy != "immediate" ||
		o.localAddressIPVersion != "v4" || o.logLevel != "warning" || !o.disableHotRestart || !o.allowUnknownStatic || !o.skipDeprecatedLogs {
		t.Fatalf("flags parsed wrongly: %+v", o)
	}
	more := []string{"-c", "x.json", "--log-format", "%v", "--concurrency", "2", "--parent-shutdown-time-s", "60", "--component-log-level", "misc:error", "--file-flush-min-size-kb", "8"}
	o, err = parseFlags(more, os.Stderr)
	if err != nil || o.concurrency != 2 || o.parentShutdownTimeS != 60 || o.logFormat != "%v" {
		t.Fatalf("extra Envoy flags: %v %+v", err, o)
	}
	if _, err := parseFlags([]string{"--no-such-flag"}, devNull{}); err == nil {
		t.Fatal("an unknown flag must be rejected, as Envoy does")
	}
	if _, err := parseFlags([]string{"--local-address-ip-version", "v5"}, devNull{}); err == nil {
		t.Fatal("a bad --local-address-ip-version must be rejected")
	}
}

type devNull struct{}

func (devNull) Write(b []byte) (int, error) { return len(b), nil }

func TestBootstrapRenderedByPilotAgent(t *testing.T) {
	bs, err := loadBootstrap("testdata/pilot-agent-bootstrap.json", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := socketAddrString(bs.GetAdmin().GetAddress()); got != "127.0.0.1:15000" {
		t.Errorf("admin address %s", got)
	}
	if bs.GetDynamicResources().GetAdsConfig().GetApiType().String() != "DELTA_GRPC" {
		t.Errorf("ads api_type %s", bs.GetDynamicResources().GetAdsConfig().GetApiType())
	}
	if bs.GetNode().GetId() != testNodeID {
		t.Errorf("node id %s", bs.GetNode().GetId())
	}
	names := map[string]string{}
	for _, c := range bs.GetStaticResources().GetClusters() {
		names[c.GetName()] = socketAddrString(c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress())
	}
	if names["xds-grpc"] != "/work-dir/etc/istio/proxy/XDS" || names["sds-grpc"] != "./var/run/secrets/workload-spiffe-uds/socket" || names["agent"] != "127.0.0.1:15020" {
		t.Errorf("static clusters: %v", names)
	}
	m := newStatsMatcher(bs)
	for name, want := range map[string]bool{"server.state": true, "cluster.xds-grpc;.upstream_cx_active": true, "listener.0.0.0.0_15006.ssl.handshake": false,
		"istio_requests_total": true, "cluster.outbound|80||a.b.svc.cluster.local;.upstream_cx_total": false} {
		if m.includes(name) != want {
			t.Errorf("stats matcher includes(%s) = %v, want %v", name, !want, want)
		}
	}
	if _, err := loadBootstrap(filepath.Join(t.TempDir(), "missing.json"), ""); err == nil {
		t.Error("a missing bootstrap must fail")
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	_ = os.WriteFile(bad, []byte(`{"admin": {"address": 7}}`), 0o600)
	if _, err := loadBootstrap(bad, ""); err == nil {
		t.Error("a malformed bootstrap must fail")
	}
}

// ---- (a) ADS + SDS client, admin endpoints ----

type mesh struct {
	cp        *controlPlane
	pki       *pki
	cert, key []byte
	st        *standin
	app       *app
	inPort    int
	outPort   int
	svcPort   int
	version   int
	extraRes  map[resourcev3.Type][]types.Resource
	strict    bool
	// virtualOutbound's bind address: 127.0.0.1, or 0.0.0.0 in a test's own network namespace
	outboundIP string
}

func (m *mesh) resources() map[resourcev3.Type][]types.Resource {
	res := map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  append(baseClusters(), inboundCluster(m.app.port)),
		resourcev3.ListenerType: append([]types.Resource{virtualInbound(m.inPort, m.app.port, m.strict)}, outboundListenersOn(m.outboundIP, m.outPort, m.svcPort)...),
		resourcev3.RouteType:    {outboundRoute(m.svcPort, map[string]string{})},
		resourcev3.SecretType:   istioSecrets(m.cert, m.key, m.pki.caPEM),
	}
	for k, v := range m.extraRes {
		if k == resourcev3.RouteType {
			res[k] = v
			continue
		}
		res[k] = append(res[k], v...)
	}
	return res
}

func (m *mesh) push(t *testing.T) {
	t.Helper()
	m.version++
	m.cp.set(t, testNodeID, fmt.Sprint(m.version), m.resources())
}

func newMesh(t *testing.T, apiType string, p *pki, spiffe string) *mesh {
	t.Helper()
	dir := t.TempDir()
	m := &mesh{cp: startControlPlane(t, dir), pki: p, app: startApp(t), inPort: freePort(t), outPort: freePort(t), svcPort: freePort(t), outboundIP: "127.0.0.1"}
	m.cert, m.key = p.workload(t, spiffe)
	m.st = startStandin(t, m.cp, apiType)
	return m
}

func (m *mesh) waitLive(t *testing.T) {
	t.Helper()
	waitFor(t, "/ready LIVE", func() bool { code, body, _ := m.st.get("/ready"); return code == 200 && body == "LIVE\n" })
}

func testADSAndAdmin(t *testing.T, apiType string) {
	p := newPKI(t, "cluster.local")
	m := newMesh(t, apiType, p, "spiffe://cluster.local/ns/ns1/sa/vm-sa")
	// No configuration yet: Envoy is not ready, and pilot-agent's readiness stats say so.
	code, body, _ := m.st.get("/ready")
	if code != 503 || body != "INITIALIZING\n" {
		t.Fatalf("before xDS: /ready %d %q", code, body)
	}
	_, stats, _ := m.st.get("/stats?usedonly&filter=" + urlEscape(`^(server\.state|listener_manager\.workers_started)`))
	if v, _ := statValue(stats, "server.state"); v != "3" {
		t.Fatalf("server.state before xDS = %q\n%s", v, stats)
	}
	m.push(t)
	m.waitLive(t)
	filter := `^(cluster\.xds-grpc|cluster_manager\.cds|listener_manager\.lds|server\.state|listener_manager\.workers_started)`
	_, stats, _ = m.st.get("/stats?usedonly&filter=" + urlEscape(filter))
	for name, want := range map[string]string{"server.state": "0", "listener_manager.workers_started": "1", "cluster_manager.cds.update_success": "1",
		"listener_manager.lds.update_success": "1", "cluster_manager.cds.update_rejected": "0", "cluster.xds-grpc;.upstream_cx_active": "2", "cluster.xds-grpc;.upstream_cx_total": "2"} {
		got, ok := statValue(stats, name)
		if name == "cluster_manager.cds.update_rejected" {
			if ok {
				t.Errorf("usedonly must hide the untouched %s", name)
			}
			continue
		}
		if name == "cluster.xds-grpc;.upstream_cx_active" || name == "cluster.xds-grpc;.upstream_cx_total" {
			// the ADS stream's connection; SDS dials sds-grpc, a different cluster
			want = "1"
		}
		if got != want {
			t.Errorf("%s = %q, want %q\n%s", name, got, want, stats)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(stats), "\n") {
		if !regexp.MustCompile(`^[^:\s]+: \d+$`).MatchString(line) {
			t.Errorf("not Envoy's /stats text line: %q", line)
		}
	}
	if nacks := m.cp.nackList(); len(nacks) != 0 {
		t.Errorf("istiod-shaped config NACKed: %v", nacks)
	}
	checkSecretsDump(t, m)
	checkCerts(t, m)
	checkServerInfo(t, m)
	checkClusters(t, m)
	checkConfigDump(t, m)
}

func urlEscape(s string) string {
	return strings.NewReplacer("\\", "%5C", "^", "%5E", "|", "%7C", "(", "%28", ")", "%29").Replace(s)
}

func TestADSDeltaAndAdminEndpoints(t *testing.T) { testADSAndAdmin(t, "") }
func TestADSStateOfTheWorld(t *testing.T)        { testADSAndAdmin(t, "GRPC") }

// keyPaths lists the JSON key paths of a document ("a.b[].c"), to compare shapes with the reference.
func keyPaths(v any, prefix string, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, vv := range x {
			p := prefix + "." + k
			out[p] = true
			keyPaths(vv, p, out)
		}
	case []any:
		for _, vv := range x {
			keyPaths(vv, prefix+"[]", out)
		}
	}
}

func checkSecretsDump(t *testing.T, m *mesh) {
	t.Helper()
	code, body, _ := m.st.get("/config_dump?resource=dynamic_active_secrets")
	if code != 200 {
		t.Fatalf("config_dump secrets: %d %s", code, body)
	}
	var doc struct {
		Configs []map[string]any `json:"configs"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Configs) != 2 {
		t.Fatalf("want default and ROOTCA, got %d entries", len(doc.Configs))
	}
	byName := map[string]map[string]any{}
	for _, c := range doc.Configs {
		if c["@type"] != "type.googleapis.com/envoy.admin.v3.SecretsConfigDump.DynamicSecret" {
			t.Errorf("entry type %v", c["@type"])
		}
		byName[c["name"].(string)] = c
	}
	def := byName["default"]["secret"].(map[string]any)["tls_certificate"].(map[string]any)
	chain, _ := base64.StdEncoding.DecodeString(def["certificate_chain"].(map[string]any)["inline_bytes"].(string))
	if string(chain) != string(m.cert) {
		t.Error("default chain differs from the SDS secret")
	}
	if def["private_key"].(map[string]any)["inline_bytes"] != base64.StdEncoding.EncodeToString([]byte("[redacted]")) {
		t.Error("private key not redacted")
	}
	root, _ := base64.StdEncoding.DecodeString(byName["ROOTCA"]["secret"].(map[string]any)["validation_context"].(map[string]any)["trusted_ca"].(map[string]any)["inline_bytes"].(string))
	if string(root) != string(m.pki.caPEM) {
		t.Error("ROOTCA differs")
	}
	// Same key paths as the real dump's dynamic_active_secrets entries.
	var ref struct {
		Configs []struct {
			Active []any `json:"dynamic_active_secrets"`
		} `json:"configs"`
	}
	if err := json.Unmarshal(readRef(t, "config_dump/secrets_config_dump.istio-testdata.json"), &ref); err != nil {
		t.Fatal(err)
	}
	want, got := map[string]bool{}, map[string]bool{}
	keyPaths(ref.Configs[0].Active, "", want)
	for _, c := range doc.Configs {
		keyPaths([]any{map[string]any(c)}, "", got)
	}
	delete(got, "[].@type")
	// version_info is a DynamicSecret field Envoy prints when the SDS response carried one (Istio's did not in
	// the reference capture; go-control-plane's cache sets one).
	delete(got, "[].version_info")
	for k := range want {
		if !got[k] {
			t.Errorf("reference key %s missing from our dump", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("key %s not in the reference dump", k)
		}
	}
	// the whole dump carries the secrets section too
	_, whole, _ := m.st.get("/config_dump")
	if !strings.Contains(whole, `"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"`) || !strings.Contains(whole, `"dynamic_active_secrets"`) {
		t.Error("full config_dump lacks the SecretsConfigDump")
	}
}

func checkCerts(t *testing.T, m *mesh) {
	t.Helper()
	_, body, _ := m.st.get("/certs")
	var got, ref any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(readRef(t, "certs/certs.constructed.json"), &ref)
	gk, rk := map[string]bool{}, map[string]bool{}
	keyPaths(got, "", gk)
	keyPaths(ref, "", rk)
	if fmt.Sprint(sortedKeys(gk)) != fmt.Sprint(sortedKeys(rk)) {
		t.Errorf("/certs keys differ from the reference:\n got %v\nwant %v", sortedKeys(gk), sortedKeys(rk))
	}
	for _, want := range []string{`"path": "\u003cinline\u003e"`, `"uri": "spiffe://cluster.local/ns/ns1/sa/vm-sa"`, `"days_until_expiration": "0"`, `"subject_alt_names": []`} {
		if !strings.Contains(body, want) {
			t.Errorf("/certs lacks %s\n%s", want, body)
		}
	}
	if !regexp.MustCompile(`"serial_number": "[0-9a-f]+"`).MatchString(body) || !regexp.MustCompile(`"expiration_time": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"`).MatchString(body) {
		t.Errorf("/certs serial/time format:\n%s", body)
	}
}

func checkServerInfo(t *testing.T, m *mesh) {
	t.Helper()
	_, body, _ := m.st.get("/server_info")
	var info map[string]any
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatal(err)
	}
	if info["state"] != "LIVE" || info["node"].(map[string]any)["id"] != testNodeID {
		t.Errorf("server_info: %v", body)
	}
	clo := info["command_line_options"].(map[string]any)
	if clo["drain_strategy"] != "Immediate" || clo["log_level"] != "warning" {
		t.Errorf("command_line_options: %v", clo)
	}
}

func checkClusters(t *testing.T, m *mesh) {
	t.Helper()
	_, body, _ := m.st.get("/clusters")
	for _, want := range []string{"xds-grpc::observability_name::xds-grpc;", "PassthroughCluster::added_via_api::true", "agent::added_via_api::false"} {
		if !strings.Contains(body, want) {
			t.Errorf("/clusters lacks %q", want)
		}
	}
	ref := string(readRef(t, "clusters/clusters_text.constructed.txt"))
	line := regexp.MustCompile(`^[^:]+(::[^:]+)*::[^\n]*$`)
	for _, l := range strings.Split(strings.TrimSpace(ref), "\n") {
		if !line.MatchString(l) {
			t.Fatalf("reference line shape unexpected: %q", l)
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
		if !strings.Contains(l, "::") {
			t.Errorf("/clusters line %q is not name::key::value", l)
		}
	}
}

func checkConfigDump(t *testing.T, m *mesh) {
	t.Helper()
	_, body, _ := m.st.get("/config_dump")
	var doc struct {
		Configs []map[string]any `json:"configs"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, c := range doc.Configs {
		types = append(types, strings.TrimPrefix(c["@type"].(string), "type.googleapis.com/envoy.admin.v3."))
	}
	// Envoy's order (reference waypoint dump): Bootstrap, Clusters, Listeners, ScopedRoutes, Routes, Secrets.
	if strings.Join(types, ",") != "BootstrapConfigDump,ClustersConfigDump,ListenersConfigDump,ScopedRoutesConfigDump,RoutesConfigDump,SecretsConfigDump" {
		t.Errorf("config_dump sections: %v", types)
	}
	var ref struct {
		Configs []map[string]any `json:"configs"`
	}
	_ = json.Unmarshal(readRef(t, "config_dump/waypoint_full_config_dump.istio-testdata.json"), &ref)
	var refTypes []string
	for _, c := range ref.Configs {
		if tt := strings.TrimPrefix(c["@type"].(string), "type.googleapis.com/envoy.admin.v3."); tt != "EndpointsConfigDump" {
			refTypes = append(refTypes, tt)
		}
	}
	if strings.Join(refTypes, ",") != strings.Join(types, ",") {
		t.Errorf("section order differs from the reference: %v vs %v", types, refTypes)
	}
	_, eds, _ := m.st.get("/config_dump?include_eds")
	if !strings.Contains(eds, "EndpointsConfigDump") {
		t.Error("include_eds adds no EndpointsConfigDump")
	}
	if code, _, _ := m.st.get("/config_dump?resource=no_such_field"); code != 404 {
		t.Errorf("unknown resource: %d", code)
	}
}

func TestListenerRejectedIsNACKed(t *testing.T) {
	p := newPKI(t, "cluster.local")
	m := newMesh(t, "", p, "spiffe://cluster.local/ns/ns1/sa/vm-sa")
	m.push(t)
	m.waitLive(t)
	bad := &listenerv3.Listener{Name: "broken", Address: sockAddr("not-an-ip", 1)}
	m.extraRes = map[resourcev3.Type][]types.Resource{resourcev3.ListenerType: {bad}}
	m.push(t)
	waitFor(t, "LDS NACK", func() bool { return len(m.cp.nackList()) > 0 })
	if n := m.cp.nackList()[0]; !strings.Contains(n, "Listener: Error adding/updating listener(s) broken: malformed IP address: not-an-ip") {
		t.Errorf("NACK detail: %s", n)
	}
	_, stats, _ := m.st.get("/stats?filter=lds")
	if v, _ := statValue(stats, "listener_manager.lds.update_rejected"); v != "1" {
		t.Errorf("lds.update_rejected = %q", v)
	}
	if v, _ := statValue(stats, "listener_manager.lds.update_success"); v != "1" {
		t.Errorf("lds.update_success = %q", v)
	}
	// a rejected update leaves the server LIVE with the previous listeners
	if code, _, _ := m.st.get("/ready"); code != 200 {
		t.Error("server left LIVE after a NACK")
	}
}

// ---- static listeners from the bootstrap: 15090 and 15021 ----

func TestStaticListenersRouteToAdminAndAgent(t *testing.T) {
	p := newPKI(t, "cluster.local")
	m := newMesh(t, "", p, "spiffe://cluster.local/ns/ns1/sa/vm-sa")
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", m.st.ports.agent))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = (&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz/ready" {
				w.WriteHeader(200)
				return
			}
			w.WriteHeader(500)
		})}).Serve(ln)
	}()
	t.Cleanup(func() { ln.Close() })
	m.push(t)
	m.waitLive(t)
	code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/stats/prometheus", m.st.ports.prom))
	if err != nil || code != 200 || !strings.Contains(body, "# TYPE envoy_server_state gauge") {
		t.Fatalf("15090 /stats/prometheus: %d %v %.200s", code, err, body)
	}
	if code, _, _ := httpGet(fmt.Sprintf("http://127.0.0.1:%d/healthz/ready", m.st.ports.status)); code != 200 {
		t.Errorf("15021 /healthz/ready: %d", code)
	}
	if code, _, _ := httpGet(fmt.Sprintf("http://127.0.0.1:%d/other", m.st.ports.status)); code != 404 {
		t.Errorf("15021 /other: %d (Envoy answers 404: no route)", code)
	}
	ln.Close()
	if code, body, _ := httpGet(fmt.Sprintf("http://127.0.0.1:%d/healthz/ready", m.st.ports.status)); code != 503 || !strings.HasPrefix(body, "upstream connect error") {
		t.Errorf("15021 with the agent down: %d %q", code, body)
	}
}

// ---- (b) inbound mTLS by filter chains ----

func TestInboundMTLSByFilterChain(t *testing.T) {
	p := newPKI(t, "cluster.local")
	m := newMesh(t, "", p, "spiffe://cluster.local/ns/ns1/sa/vm-sa")
	m.push(t)
	m.waitLive(t)
	appDst := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", m.app.port))
	clientCert, clientKey := p.workload(t, "spiffe://cluster.local/ns/default/sa/sleep")

	// mTLS with Istio's ALPN: TLS chain for the port, XFCC to the app, mutual_tls reported.
	c := m.st.dialRedirected(t, m.inPort, appDst)
	tc := tls.Client(c, clientTLS(clientCert, clientKey, p.caPEM, []string{"istio-http/1.1", "istio", "http/1.1"}))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("mTLS handshake: %v", err)
	}
	if tc.ConnectionState().PeerCertificates[0].URIs[0].String() != "spiffe://cluster.local/ns/ns1/sa/vm-sa" {
		t.Error("server did not present the SDS default cert")
	}
	code, body := httpOver(t, tc, "vm-app.ns1.svc.cluster.local:80")
	if code != 200 || !strings.HasPrefix(body, "hello from app") {
		t.Fatalf("mTLS request: %d %q", code, body)
	}
	xfcc := m.app.last().Get("X-Forwarded-Client-Cert")
	if !strings.Contains(xfcc, "By=spiffe://cluster.local/ns/ns1/sa/vm-sa") || !strings.Contains(xfcc, "URI=spiffe://cluster.local/ns/default/sa/sleep") {
		t.Errorf("XFCC %q", xfcc)
	}
	if !strings.HasPrefix(m.app.last().Get("X-Test-Remote"), "127.0.0.6:") {
		t.Errorf("inbound cluster must bind 127.0.0.6 (upstream_bind_config): %s", m.app.last().Get("X-Test-Remote"))
	}

	// plaintext HTTP under PERMISSIVE: raw_buffer chain, connection_security_policy none.
	c = m.st.dialRedirected(t, m.inPort, appDst)
	if code, _ := httpOver(t, c, "vm-app.ns1.svc.cluster.local:80"); code != 200 {
		t.Fatalf("plaintext under PERMISSIVE: %d", code)
	}
	if m.app.last().Get("X-Forwarded-Client-Cert") != "" {
		t.Error("plaintext request carries XFCC")
	}
	prom := promText(t, m)
	if !hasSample(prom, "istio_requests_total", `reporter="destination"`, `connection_security_policy="mutual_tls"`, `source_principal="spiffe://cluster.local/ns/default/sa/sleep"`, `response_code="200"`) {
		t.Errorf("no mutual_tls sample:\n%s", grepLines(prom, "istio_requests_total"))
	}
	if !hasSample(prom, "istio_requests_total", `reporter="destination"`, `connection_security_policy="none"`) {
		t.Errorf("no plaintext (none) sample:\n%s", grepLines(prom, "istio_requests_total"))
	}

	// a client cert from another CA fails the handshake (peer validated against ROOTCA)
	other := newPKI(t, "other")
	oc, ok := other.workload(t, "spiffe://cluster.local/ns/default/sa/sleep")
	c = m.st.dialRedirected(t, m.inPort, appDst)
	tc = tls.Client(c, clientTLS(oc, ok, p.caPEM, []string{"istio-http/1.1"}))
	if err := tc.Handshake(); err == nil {
		if code, _ := httpOver(t, tc, "x"); code == 200 {
			t.Error("a certificate from another CA was accepted")
		}
	}
	tc.Close()
	// TLS without a client certificate: require_client_certificate
	c = m.st.dialRedirected(t, m.inPort, appDst)
	tc = tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"istio-http/1.1"}})
	if err := tc.Handshake(); err == nil {
		if code, _ := httpOver(t, tc, "x"); code == 200 {
			t.Error("TLS without a client certificate was accepted")
		}
	}
	tc.Close()
	sslErr := fmt.Sprintf("listener.127.0.0.1_%d.ssl.connection_error", m.inPort)
	waitFor(t, "ssl.connection_error counted", func() bool { return m.st.srv.stats.get(sslErr) == 2 })
	// Istio's default stats_matcher does not instantiate listener stats: /stats does not show them.
	if _, s, _ := m.st.get("/stats?filter=ssl"); strings.Contains(s, sslErr) {
		t.Errorf("%s shown despite the bootstrap's inclusion list", sslErr)
	}

	// a non-HTTP protocol to a port without a service chain: the raw_buffer catch-all, tcp_proxy to
	// InboundPassthroughCluster (original destination), decided on the first 5 bytes (no waiting for more)
	echo := startTCPEcho(t)
	c = m.st.dialRedirected(t, m.inPort, echo)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping\n" {
		t.Fatalf("TCP passthrough echo: %q %v", buf, err)
	}
	c.Close()
	waitFor(t, "istio_tcp_connections_opened_total", func() bool {
		return hasSample(promText(t, m), "istio_tcp_connections_opened_total", `reporter="destination"`, `connection_security_policy="none"`)
	})

	// STRICT: istiod drops the plaintext chains; plaintext then matches no chain and is closed.
	m.strict = true
	m.push(t)
	waitFor(t, "STRICT listener applied", func() bool {
		_, s, _ := m.st.get("/stats?filter=lds")
		v, _ := statValue(s, "listener_manager.lds.update_success")
		return v == "2"
	})
	c = m.st.dialRedirected(t, m.inPort, appDst)
	if code, body := httpOver(t, c, "vm-app.ns1.svc.cluster.local:80"); code == 200 {
		t.Errorf("plaintext accepted under STRICT: %q", body)
	}
	c = m.st.dialRedirected(t, m.inPort, appDst)
	tc = tls.Client(c, clientTLS(clientCert, clientKey, p.caPEM, []string{"istio-http/1.1"}))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("mTLS under STRICT: %v", err)
	}
	if code, _ := httpOver(t, tc, "vm-app.ns1.svc.cluster.local:80"); code != 200 {
		t.Errorf("mTLS under STRICT: %d", code)
	}
}

func promText(t *testing.T, m *mesh) string {
	t.Helper()
	_, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/stats/prometheus", m.st.ports.admin))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func hasSample(prom, metric string, labels ...string) bool {
	for _, l := range strings.Split(prom, "\n") {
		if !strings.HasPrefix(l, metric+"{") {
			continue
		}
		all := true
		for _, want := range labels {
			if !strings.Contains(l, want) {
				all = false
			}
		}
		if all {
			return true
		}
	}
	return false
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The real virtualInbound listener from the reference dump: accepted, and its chains picked as Envoy would.
func TestReferenceVirtualInboundChains(t *testing.T) {
	var dump struct {
		Configs []struct {
			Dynamic []struct {
				Active struct {
					Listener json.RawMessage `json:"listener"`
				} `json:"active_state"`
			} `json:"dynamic_listeners"`
		} `json:"configs"`
	}
	if err := json.Unmarshal(readRef(t, "config_dump/sidecar_listeners_excerpt.istio-testdata.json"), &dump); err != nil {
		t.Fatal(err)
	}
	var vi *listenerv3.Listener
	for _, c := range dump.Configs {
		for _, d := range c.Dynamic {
			l := &listenerv3.Listener{}
			if err := (protojson.UnmarshalOptions{Resolver: resolver, DiscardUnknown: true}).Unmarshal(d.Active.Listener, l); err != nil {
				t.Fatalf("reference listener does not parse: %v", err)
			}
			if err := (&listenerManager{}).validate(l); err != nil {
				t.Errorf("reference listener %s would be NACKed: %v", l.GetName(), err)
			}
			if l.GetName() == "virtualInbound" {
				vi = l
			}
		}
	}
	if vi == nil {
		t.Fatal("no virtualInbound in the reference")
	}
	ip := netip.MustParseAddr("10.244.0.22")
	cases := []struct {
		port      uint16
		transport string
		alpn      []string
		want      string
		tls       bool
	}{
		{80, "tls", []string{"istio-http/1.1"}, "0.0.0.0_80", true},
		{80, "raw_buffer", nil, "0.0.0.0_80", false},
		{8080, "tls", []string{"istio-http/1.1"}, "virtualInbound-catchall-http", true},
		{8080, "raw_buffer", []string{"http/1.1"}, "virtualInbound-catchall-http", false},
		{8080, "tls", []string{"istio-peer-exchange", "istio"}, "virtualInbound", true},
		{8080, "raw_buffer", nil, "virtualInbound", false},
		{15006, "raw_buffer", nil, "virtualInbound-blackhole", false},
	}
	for _, c := range cases {
		fc := matchFilterChain(vi, &connInfo{dst: netip.AddrPortFrom(ip, c.port), src: netip.MustParseAddrPort("10.244.0.9:40000"), transportProtocol: c.transport, alpn: c.alpn})
		if fc == nil || fc.GetName() != c.want || (fc.GetTransportSocket() != nil) != c.tls {
			t.Errorf("port %d %s %v: got %v (tls %v), want %s (tls %v)", c.port, c.transport, c.alpn, fc.GetName(), fc.GetTransportSocket() != nil, c.want, c.tls)
		}
	}
	// listener filters as configured there: tls_inspector off on 15006, http_inspector off on 80 and 15006
	tlsI := hasListenerFilter(vi, "envoy.filters.listener.tls_inspector")
	httpI := hasListenerFilter(vi, "envoy.filters.listener.http_inspector")
	if !filterDisabled(tlsI.GetFilterDisabled(), 15006) || filterDisabled(tlsI.GetFilterDisabled(), 80) ||
		!filterDisabled(httpI.GetFilterDisabled(), 80) || filterDisabled(httpI.GetFilterDisabled(), 8080) {
		t.Error("filter_disabled predicates evaluated wrongly")
	}
}

// ---- (c) outbound routing and auto mTLS ----

func TestOutboundByHostWithAutoMTLS(t *testing.T) {
	p := newPKI(t, "cluster.local")
	// server side: the VM's stand-in (inbound mTLS to its app)
	vm := newMesh(t, "", p, "spiffe://cluster.local/ns/vm-ns/sa/vm-sa")
	vm.push(t)
	vm.waitLive(t)
	vmAppDst := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", vm.app.port))
	// every connection arriving at the VM's inbound listener was "sent to" its app port
	vm.st.redirectAllTo(vmAppDst)

	// client side: a pod's stand-in with a mesh service for the VM
	client := newMesh(t, "", p, "spiffe://cluster.local/ns/default/sa/sleep")
	host := "vm-app.vm-ns.svc.cluster.local"
	plainHost := "legacy.vm-ns.svc.cluster.local"
	cl := autoMTLSCluster(host, client.svcPort, "spiffe://cluster.local/ns/vm-ns/sa/vm-sa")
	plainCl := autoMTLSCluster(plainHost, client.svcPort, "spiffe://cluster.local/ns/vm-ns/sa/vm-sa")
	vmInbound := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", vm.inPort))
	client.extraRes = map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  {cl, plainCl},
		resourcev3.EndpointType: {edsEndpoints(cl.GetName(), vmInbound, "istio"), edsEndpoints(plainCl.GetName(), vmInbound, "")},
		resourcev3.RouteType:    {outboundRoute(client.svcPort, map[string]string{host: cl.GetName(), plainHost: plainCl.GetName()})},
	}
	client.push(t)
	client.waitLive(t)
	vip := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.50:%d", client.svcPort))

	// 1. by service host: RDS virtual host -> EDS endpoint with tlsMode istio -> mTLS with Istio's SNI
	c := client.st.dialRedirected(t, client.outPort, vip)
	code, body := httpOver(t, c, host)
	if code != 200 || !strings.HasPrefix(body, "hello from app") {
		t.Fatalf("request by service host: %d %q", code, body)
	}
	xfcc := vm.app.last().Get("X-Forwarded-Client-Cert")
	if !strings.Contains(xfcc, "URI=spiffe://cluster.local/ns/default/sa/sleep") {
		t.Errorf("VM app did not see the client's identity (no mTLS): %q", xfcc)
	}
	// 2. endpoint without tlsMode: plaintext to the VM's inbound (PERMISSIVE chain)
	c = client.st.dialRedirected(t, client.outPort, vip)
	if code, _ := httpOver(t, c, plainHost); code != 200 {
		t.Fatalf("plaintext endpoint: %d", code)
	}
	if vm.app.last().Get("X-Forwarded-Client-Cert") != "" {
		t.Error("endpoint without tlsMode metadata went over mTLS")
	}
	// 3. by raw IP: catch-all virtual host -> PassthroughCluster -> the original destination, plaintext;
	// the service-port listener (0.0.0.0_<svcPort>) takes any IP on that port; dial "the VM by IP" on it
	appOnSvcPort := startAppOn(t, client.svcPort)
	c = client.st.dialRedirected(t, client.outPort, netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", client.svcPort)))
	code, body = httpOver(t, c, fmt.Sprintf("127.0.0.1:%d", client.svcPort))
	if code != 200 || !strings.HasPrefix(body, "direct app") {
		t.Fatalf("request by IP through passthrough: %d %q", code, body)
	}
	if appOnSvcPort.last().Get("X-Forwarded-Client-Cert") != "" {
		t.Error("passthrough carried a client certificate")
	}
	// 4. HTTP/2: an h2c (prior knowledge) client, a cluster with explicit http2 and istiod's h2 ALPN
	// (ALPNInMeshH2WithMxc): HTTP/2 over mTLS to the VM's stand-in, HTTP/1.1 to its app.
	h2Host := "grpc-app.vm-ns.svc.cluster.local"
	h2Cl := autoMTLSCluster(h2Host, client.svcPort, "spiffe://cluster.local/ns/vm-ns/sa/vm-sa")
	makeHTTP2Cluster(h2Cl)
	client.extraRes[resourcev3.ClusterType] = append(client.extraRes[resourcev3.ClusterType], h2Cl)
	client.extraRes[resourcev3.EndpointType] = append(client.extraRes[resourcev3.EndpointType], edsEndpoints(h2Cl.GetName(), vmInbound, "istio"))
	client.extraRes[resourcev3.RouteType] = []types.Resource{outboundRoute(client.svcPort, map[string]string{host: cl.GetName(), plainHost: plainCl.GetName(), h2Host: h2Cl.GetName()})}
	client.push(t)
	waitFor(t, "h2 cluster applied", func() bool {
		return client.st.srv.lookupCluster(h2Cl.GetName()) != nil && client.st.srv.lookupRoute(fmt.Sprint(client.svcPort)) != nil && len(client.st.srv.lookupRoute(fmt.Sprint(client.svcPort)).GetVirtualHosts()) == 4
	})
	h2c := &http2.Transport{AllowHTTP: true, DialTLSContext: func(context.Context, string, string, *tls.Config) (net.Conn, error) {
		return client.st.dialRedirected(t, client.outPort, vip), nil
	}}
	resp, err := (&http.Client{Transport: h2c, Timeout: 10 * time.Second}).Get("http://" + h2Host + "/")
	if err != nil {
		t.Fatalf("h2c request: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.HasPrefix(string(b), "hello from app") {
		t.Fatalf("h2c request: %d proto %d %q", resp.StatusCode, resp.ProtoMajor, b)
	}
	if !strings.Contains(vm.app.last().Get("X-Forwarded-Client-Cert"), "URI=spiffe://cluster.local/ns/default/sa/sleep") {
		t.Error("HTTP/2 request did not arrive over mTLS")
	}
	if vm.st.srv.stats.get(fmt.Sprintf("http.inbound_0.0.0.0_%d.downstream_rq_total", vm.app.port)) == 0 {
		t.Error("VM inbound HCM saw no request")
	}

	// source-side stats: reporter=source, unknown security policy, destination principal from the peer cert
	prom := promText(t, client)
	if !hasSample(prom, "istio_requests_total", `reporter="source"`, `destination_service="`+host+`"`, `destination_principal="spiffe://cluster.local/ns/vm-ns/sa/vm-sa"`, `connection_security_policy="unknown"`) {
		t.Errorf("source-side sample:\n%s", grepLines(prom, "istio_requests_total"))
	}
	if !hasSample(promText(t, vm), "istio_requests_total", `reporter="destination"`, `connection_security_policy="mutual_tls"`, `source_principal="spiffe://cluster.local/ns/default/sa/sleep"`) {
		t.Errorf("VM side did not report mutual_tls:\n%s", grepLines(promText(t, vm), "istio_requests_total"))
	}
	// the SAN check of the auto-mTLS context: a peer with another identity is refused
	wrong := autoMTLSCluster(host, client.svcPort, "spiffe://cluster.local/ns/vm-ns/sa/someone-else")
	client.extraRes[resourcev3.ClusterType] = []types.Resource{wrong, plainCl}
	before := client.st.srv.stats.get("cluster_manager.cds.update_success")
	client.push(t)
	waitFor(t, "CDS update applied", func() bool { return client.st.srv.stats.get("cluster_manager.cds.update_success") > before })
	c = client.st.dialRedirected(t, client.outPort, vip)
	if code, body := httpOver(t, c, host); code != 503 || !strings.Contains(body, "upstream connect error") {
		t.Errorf("wrong peer identity: %d %q", code, body)
	}
}

// makeHTTP2Cluster: what istiod does for an HTTP2/gRPC port or h2UpgradePolicy UPGRADE (cluster_builder.go,
// cluster_tls.go): explicit http2 protocol options and ALPN istio-peer-exchange, istio, h2.
func makeHTTP2Cluster(c *clusterv3.Cluster) {
	opts := &httpoptsv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpoptsv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpoptsv3.HttpProtocolOptions_ExplicitHttpConfig{
		ProtocolConfig: &httpoptsv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": anyOf(opts)}
	for _, m := range c.GetTransportSocketMatches() {
		if m.GetName() != "tlsMode-istio" {
			continue
		}
		u := &tlsv3.UpstreamTlsContext{}
		_ = m.GetTransportSocket().GetTypedConfig().UnmarshalTo(u)
		u.CommonTlsContext.AlpnProtocols = []string{"istio-peer-exchange", "istio", "h2"}
		m.TransportSocket.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(u)}
	}
}

// startTCPEcho echoes bytes back (a non-HTTP workload port).
func startTCPEcho(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// startAppOn runs an app on a given loopback port (the "VM by IP" target of a passthrough request).
func startAppOn(t *testing.T, port int) *app {
	t.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	a := &app{port: port}
	a.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Header.Clone())
		a.mu.Unlock()
		fmt.Fprint(w, "direct app")
	})}
	go func() { _ = a.srv.Serve(ln) }()
	t.Cleanup(func() { _ = a.srv.Close() })
	return a
}

// ---- the binary, started with pilot-agent's command line ----

func TestBinaryStartsWithPilotAgentCommandLine(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "envoy")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cp := startControlPlane(t, dir)
	p := ports{admin: freePort(t), prom: freePort(t), status: freePort(t), agent: freePort(t)}
	bsPath := testBootstrap(t, dir, cp, p, "")
	args := strings.Fields(strings.ReplaceAll(mustRead(t, "testdata/pilot-agent-envoy-args.txt"), "/work-dir/etc/istio/proxy/envoy-rev.json", bsPath))
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err != nil || !strings.Contains(string(out), "version:") {
		t.Errorf("--version: %v %s", err, out)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	admin := fmt.Sprintf("http://127.0.0.1:%d", p.admin)
	waitFor(t, "admin up", func() bool { _, _, err := httpGet(admin + "/ready"); return err == nil })
	pk := newPKI(t, "cluster.local")
	cert, key := pk.workload(t, "spiffe://cluster.local/ns/ns1/sa/vm-sa")
	cp.set(t, testNodeID, "1", map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType: baseClusters(), resourcev3.ListenerType: {virtualInbound(freePort(t), 9, false)}, resourcev3.SecretType: istioSecrets(cert, key, pk.caPEM)})
	waitFor(t, "LIVE", func() bool { code, _, _ := httpGet(admin + "/ready"); return code == 200 })
	resp, err := http.Post(admin+"/quitquitquit", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-done; err != nil {
		t.Errorf("exit after /quitquitquit: %v\n%s", err, logs.String())
	}
	cmd.ProcessState = &os.ProcessState{}
	if bad := exec.Command(bin, "-c", filepath.Join(dir, "missing.json")); bad.Run() == nil {
		t.Error("a missing bootstrap must exit non-zero")
	}
}

// Issue 15 in two stand-ins: a call to the VM by IP leaves the client through PassthroughCluster in plaintext,
// so the VM's STRICT listener (no plaintext chain) refuses it, while the same VM answers the service host
// over auto mTLS; under PERMISSIVE the by-IP call succeeds but is reported as connection_security_policy none.
func TestByIPIsPlaintextAndFailsUnderStrict(t *testing.T) {
	p := newPKI(t, "cluster.local")
	for _, strict := range []bool{true, false} {
		vm := newMesh(t, "", p, "spiffe://cluster.local/ns/vm-ns/sa/vm-sa")
		vm.strict = strict
		vm.push(t)
		vm.waitLive(t)
		vmAppDst := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", vm.app.port))
		vm.st.redirectAllTo(vmAppDst)
		vmAddr := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", vm.inPort)) // "the VM's IP:port", redirected to its 15006

		client := newMesh(t, "", p, "spiffe://cluster.local/ns/default/sa/sleep")
		host := "vm-app.vm-ns.svc.cluster.local"
		cl := autoMTLSCluster(host, client.svcPort, "spiffe://cluster.local/ns/vm-ns/sa/vm-sa")
		client.extraRes = map[resourcev3.Type][]types.Resource{
			resourcev3.ClusterType:  {cl},
			resourcev3.EndpointType: {edsEndpoints(cl.GetName(), vmAddr, "istio")},
			resourcev3.RouteType:    {outboundRoute(client.svcPort, map[string]string{host: cl.GetName()})},
		}
		client.push(t)
		client.waitLive(t)

		byIP := client.st.dialRedirected(t, client.outPort, vmAddr)
		code, body := httpOver(t, byIP, vmAddr.String())
		if strict && code == 200 {
			t.Errorf("STRICT: the by-IP call was answered (%q); it must be refused (plaintext)", body)
		}
		if !strict {
			if code != 200 {
				t.Errorf("PERMISSIVE: by-IP call: %d %q", code, body)
			}
			if !hasSample(promText(t, vm), "istio_requests_total", `reporter="destination"`, `connection_security_policy="none"`) {
				t.Errorf("PERMISSIVE: the by-IP call is not reported as plaintext:\n%s", grepLines(promText(t, vm), "istio_requests_total"))
			}
			if hasSample(promText(t, vm), "istio_requests_total", `connection_security_policy="mutual_tls"`) {
				t.Error("PERMISSIVE: the by-IP call counted as mutual_tls")
			}
		}
		byHost := client.st.dialRedirected(t, client.outPort, netip.MustParseAddrPort(fmt.Sprintf("127.0.0.50:%d", client.svcPort)))
		if code, body := httpOver(t, byHost, host); code != 200 {
			t.Errorf("strict=%v: the call by service host failed: %d %q", strict, code, body)
		}
		if !hasSample(promText(t, vm), "istio_requests_total", `reporter="destination"`, `connection_security_policy="mutual_tls"`) {
			t.Errorf("strict=%v: the call by service host is not mutual_tls", strict)
		}
	}
}

func TestIstioALPNOverride(t *testing.T) {
	h := &hcmv3.HttpConnectionManager{HttpFilters: []*hcmv3.HttpFilter{{Name: "istio.alpn", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(istioALPNFilter())}}}}
	plain := autoMTLSCluster("a.b.svc.cluster.local", 80, "spiffe://x")
	h2 := autoMTLSCluster("a.b.svc.cluster.local", 80, "spiffe://x")
	makeHTTP2Cluster(h2)
	r11, _ := http.NewRequest("GET", "http://a/", nil)
	r10 := r11.Clone(r11.Context())
	r10.ProtoMajor, r10.ProtoMinor = 1, 0
	for _, c := range []struct {
		cluster *clusterv3.Cluster
		req     *http.Request
		want    string
	}{{plain, r11, "istio-http/1.1"}, {plain, r10, "istio-http/1.0"}, {h2, r11, "istio-h2"}} {
		if got := istioALPNOverride(h, c.cluster, c.req); len(got) == 0 || got[0] != c.want {
			t.Errorf("ALPN override %v, want %s first", got, c.want)
		}
	}
	if got := istioALPNOverride(&hcmv3.HttpConnectionManager{}, plain, r11); got != nil {
		t.Errorf("no istio.alpn filter, yet override %v", got)
	}
}

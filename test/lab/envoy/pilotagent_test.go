package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// The real pilot-agent, built from the Istio module the project pins, starts the stand-in as its Envoy.
const (
	istioModuleVersion = "v0.0.0-20260827124520-eed52ebb66ad"
	istioBuildVersion  = "1.28-dev-eed52ebb"
	agentEnv           = "ENVOY_STANDIN_TEST_PILOT_AGENT"
	agentStandinEnv    = "ENVOY_STANDIN_TEST_BINARY"
)

// pilotAgentBinary: $PILOT_AGENT when set; else the lab's Istio build output (.istio/<version>/bin/pilot-agent at
// the repository root) when present; else `go install istio.io/istio/pilot/cmd/pilot-agent@<pinned>` into a temp
// dir (Go's module and build caches make this cheap once Istio was built on the machine).
func pilotAgentBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PILOT_AGENT"); p != "" {
		return p
	}
	if p, err := filepath.Abs(filepath.Join("..", "..", "..", ".istio", istioModuleVersion, "bin", "pilot-agent")); err == nil {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "install", "-ldflags", "-X istio.io/istio/pkg/version.buildVersion="+istioBuildVersion,
		"istio.io/istio/pilot/cmd/pilot-agent@"+istioModuleVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building pilot-agent from istio.io/istio@%s: %v\n%s", istioModuleVersion, err, out)
	}
	return filepath.Join(dir, "pilot-agent")
}

// TestUnderRealPilotAgent runs in a fresh network namespace (pilot-agent and Envoy use fixed ports 15000, 15020,
// 15021, 15090): a go-control-plane server plays istiod (plaintext, controlPlaneAuthPolicy NONE), the workload
// certificate is file-mounted (./var/run/secrets/workload-spiffe-credentials, so pilot-agent's SDS serves it
// without a CA), and pilot-agent renders the bootstrap from Istio's own template and starts the stand-in.
func TestUnderRealPilotAgent(t *testing.T) {
	if os.Getenv(agentEnv) == "" {
		agent := pilotAgentBinary(t)
		dir := t.TempDir()
		bin := filepath.Join(dir, "envoy")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		cmd := exec.Command("unshare", "--net", "--", os.Args[0], "-test.run", "^TestUnderRealPilotAgent$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), agentEnv+"="+agent, agentStandinEnv+"="+bin)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestUnderRealPilotAgent") {
			t.Fatalf("under the real pilot-agent (in a new network namespace): %v\n%s", err, out)
		}
		t.Log(lastLines(string(out), 12))
		return
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v %s", err, out)
	}
	work := t.TempDir()
	mk := func(rel string, data []byte) {
		p := filepath.Join(work, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pk := newPKI(t, "cluster.local")
	cert, key := pk.workload(t, "spiffe://cluster.local/ns/ns1/sa/vm-sa")
	mk("var/run/secrets/workload-spiffe-credentials/cert-chain.pem", cert)
	mk("var/run/secrets/workload-spiffe-credentials/key.pem", key)
	mk("var/run/secrets/workload-spiffe-credentials/root-cert.pem", pk.caPEM)
	gomodcache, _ := exec.Command("go", "env", "GOMODCACHE").Output()
	tmpl, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(gomodcache)), "istio.io", "istio@"+istioModuleVersion, "tools", "packaging", "common", "envoy_bootstrap.json"))
	if err != nil {
		t.Fatalf("Istio's bootstrap template from the module cache: %v", err)
	}
	mk("var/lib/istio/envoy/envoy_bootstrap_tmpl.json", tmpl)
	_ = os.MkdirAll(filepath.Join(work, "etc", "istio", "proxy"), 0o755)

	// "istiod": go-control-plane on TCP, recording what pilot-agent forwards
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	var mu sync.Mutex
	var seen []string
	var nacks []string
	cb := serverv3.CallbackFuncs{StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.GetTypeUrl())
		if r.GetErrorDetail() != nil {
			nacks = append(nacks, r.GetErrorDetail().GetMessage())
		}
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(ctx, cache, cb))
	ln, err := net.Listen("tcp", "127.0.0.1:15010")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	defer g.Stop()
	nodeID := "sidecar~127.0.0.1~vm1.ns1~ns1.svc.cluster.local"
	app := startApp(t)
	snap, _ := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  append(baseClusters(), inboundCluster(app.port)),
		resourcev3.ListenerType: {virtualInbound(15006, app.port, false)},
	})
	if err := cache.SetSnapshot(ctx, nodeID, snap); err != nil {
		t.Fatal(err)
	}

	proxyConfig := map[string]any{"binaryPath": os.Getenv(agentStandinEnv), "configPath": filepath.Join(work, "etc", "istio", "proxy"),
		"discoveryAddress": "127.0.0.1:15010", "controlPlaneAuthPolicy": "NONE", "terminationDrainDuration": "1s", "drainDuration": "2s"}
	pc, _ := json.Marshal(proxyConfig)
	agent := exec.Command(os.Getenv(agentEnv), "proxy", "sidecar", "--proxyLogLevel=info")
	agent.Dir = work
	agent.Env = append(os.Environ(), "PROXY_CONFIG="+string(pc), "POD_NAME=vm1", "POD_NAMESPACE=ns1", "INSTANCE_IP=127.0.0.1",
		"ISTIO_META_CLUSTER_ID=Kubernetes", "CA_ADDR=127.0.0.1:1")
	var agentLog lockedBuffer
	agent.Stdout, agent.Stderr = &agentLog, &agentLog
	agent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = agent.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = syscall.Kill(-agent.Process.Pid, syscall.SIGKILL) // the agent's own process group (it and its Envoy)
			<-exited
		}
	}()
	ready := func(port int) int {
		code, _, _ := httpGet(fmt.Sprintf("http://127.0.0.1:%d/healthz/ready", port))
		return code
	}
	waitFor(t, "pilot-agent /healthz/ready on 15020 and via Envoy's 15021", func() bool { return ready(15020) == 200 && ready(15021) == 200 })
	_, stats, _ := httpGet("http://127.0.0.1:15000/stats?usedonly&filter=" + urlEscape(`^(cluster\.xds-grpc|cluster_manager\.cds|listener_manager\.lds|server\.state)`))
	for name, want := range map[string]string{"cluster.xds-grpc;.upstream_cx_active": "1", "cluster_manager.cds.update_success": "1", "listener_manager.lds.update_success": "1", "server.state": "0"} {
		if got, _ := statValue(stats, name); got != want {
			t.Errorf("%s = %q, want %q\n%s", name, got, want, stats)
		}
	}
	_, secrets, _ := httpGet("http://127.0.0.1:15000/config_dump?resource=dynamic_active_secrets")
	var doc struct {
		Configs []struct {
			Name   string `json:"name"`
			Secret struct {
				TLS *struct {
					Chain struct {
						B string `json:"inline_bytes"`
					} `json:"certificate_chain"`
				} `json:"tls_certificate"`
			} `json:"secret"`
		} `json:"configs"`
	}
	_ = json.Unmarshal([]byte(secrets), &doc)
	gotChain := false
	for _, c := range doc.Configs {
		if c.Name == "default" && c.Secret.TLS != nil {
			b, _ := base64.StdEncoding.DecodeString(c.Secret.TLS.Chain.B)
			gotChain = strings.Contains(string(b), strings.TrimSpace(string(cert[:200])))
		}
	}
	if !gotChain {
		t.Errorf("the workload certificate pilot-agent serves over SDS is not in config_dump:\n%.600s", secrets)
	}
	mu.Lock()
	t.Logf("types pilot-agent forwarded upstream: %v; NACKs: %v", uniq(seen), nacks)
	mu.Unlock()
	if code, _, _ := httpGet("http://127.0.0.1:15020/stats/prometheus"); code != 200 {
		t.Errorf("pilot-agent's merged /stats/prometheus: %d", code)
	}
	// Termination: pilot-agent drains Envoy (POST /drain_listeners) and stops it.
	_ = agent.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Errorf("pilot-agent did not exit after SIGTERM:\n%s", lastLines(agentLog.String(), 30))
	}
	if _, _, err := httpGet("http://127.0.0.1:15000/ready"); err == nil {
		t.Error("the stand-in still answers after pilot-agent stopped")
	}
	t.Log(lastLines(agentLog.String(), 8))
	if t.Failed() {
		t.Log(agentLog.String())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func uniq(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

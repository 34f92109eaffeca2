package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

const inNetnsEnv = "ENVOY_STANDIN_TEST_IN_NETNS"

// TestOriginalDstThroughIptables runs in a fresh network namespace (unshare --net; its iptables rules vanish with
// it): a real iptables REDIRECT sends a connection for 127.0.0.1:<svc port> to virtualOutbound, the stand-in
// reads SO_ORIGINAL_DST, hands the connection to the 0.0.0.0_<svc port> listener, routes it by Host through
// RDS to an EDS endpoint. This is the capture path istio-iptables sets up on a VM.
func TestOriginalDstThroughIptables(t *testing.T) {
	if os.Getenv(inNetnsEnv) != "1" {
		cmd := exec.Command("unshare", "--net", "--", os.Args[0], "-test.run", "^TestOriginalDstThroughIptables$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), inNetnsEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("in a new network namespace (needs root, unshare, iptables): %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "--- PASS: TestOriginalDstThroughIptables") {
			t.Fatalf("inner test did not pass:\n%s", out)
		}
		return
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v %s", err, out)
	}
	p := newPKI(t, "cluster.local")
	m := newMesh(t, "", p, "spiffe://cluster.local/ns/default/sa/sleep")
	m.st.useRealOriginalDst() // the real getsockopt(SOL_IP, SO_ORIGINAL_DST)
	m.outboundIP = "0.0.0.0"  // as istiod sends virtualOutbound (this namespace is the test's own)
	host := "vm-app.vm-ns.svc.cluster.local"
	cl := autoMTLSCluster(host, m.svcPort, "spiffe://cluster.local/ns/vm-ns/sa/vm-sa")
	appAddr := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", m.app.port))
	m.extraRes = map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  {cl},
		resourcev3.EndpointType: {edsEndpoints(cl.GetName(), appAddr, "")},
		resourcev3.RouteType:    {outboundRoute(m.svcPort, map[string]string{host: cl.GetName()})},
	}
	m.push(t)
	m.waitLive(t)
	rule := []string{"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport", fmt.Sprint(m.svcPort), "-j", "REDIRECT", "--to-ports", fmt.Sprint(m.outPort)}
	if out, err := exec.Command("iptables", rule...).CombinedOutput(); err != nil {
		t.Fatalf("iptables %v: %v %s", rule, err, out)
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", m.svcPort))
	if err != nil {
		t.Fatal(err)
	}
	code, body := httpOver(t, c, host)
	if code != 200 || !strings.HasPrefix(body, "hello from app") {
		t.Fatalf("redirected request: %d %q", code, body)
	}
	if got := m.app.last().Get("X-Test-Host"); got != host {
		t.Errorf("Host at the app: %q", got)
	}
	svcStat := fmt.Sprintf("listener.0.0.0.0_%d.downstream_cx_total", m.svcPort)
	if m.st.srv.stats.get(svcStat) != 1 {
		t.Errorf("connection not handed to the service-port listener (%s = %d)", svcStat, m.st.srv.stats.get(svcStat))
	}
	// without the redirect getsockopt still answers (conntrack has the un-NATed tuple): the local address
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() { c, _ := net.Dial("tcp", ln.Addr().String()); _ = c }()
	sc, _ := ln.Accept()
	od, err := originalDst(sc)
	if err == nil && od.String() != ln.Addr().String() {
		t.Errorf("un-redirected connection: original dst %s, local %s", od, ln.Addr())
	}
}

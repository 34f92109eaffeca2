package main

import (
	"encoding/json"
	"net/netip"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// testdata/real-istiod-config-dump.json is this stand-in's /config_dump inside a lab VM, started by the real
// pilot-agent against the real istiod of `npm run lab -- up --istiod real` (Istio eed52ebb; private key
// redacted). What istiod really sends a VM sidecar must be accepted and its inbound chains picked as Envoy would.
func TestRealIstiodConfigDump(t *testing.T) {
	raw := mustRead(t, "testdata/real-istiod-config-dump.json")
	dump := &adminv3.ConfigDump{}
	if err := (protojson.UnmarshalOptions{Resolver: resolver, DiscardUnknown: true}).Unmarshal([]byte(raw), dump); err != nil {
		t.Fatalf("capture does not parse: %v", err)
	}
	var listeners []*listenerv3.Listener
	clusters := map[string]*clusterv3.Cluster{}
	for _, a := range dump.GetConfigs() {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		switch d := m.(type) {
		case *adminv3.ListenersConfigDump:
			for _, l := range d.GetDynamicListeners() {
				x := &listenerv3.Listener{}
				if err := l.GetActiveState().GetListener().UnmarshalTo(x); err != nil {
					t.Fatal(err)
				}
				listeners = append(listeners, x)
			}
		case *adminv3.ClustersConfigDump:
			for _, c := range d.GetDynamicActiveClusters() {
				x := &clusterv3.Cluster{}
				if err := c.GetCluster().UnmarshalTo(x); err != nil {
					t.Fatal(err)
				}
				clusters[x.GetName()] = x
			}
		}
	}
	if len(listeners) < 5 || len(clusters) < 5 {
		t.Fatalf("capture too small: %d listeners, %d clusters", len(listeners), len(clusters))
	}
	if err := validateClusters(clusters); err != nil {
		t.Errorf("istiod's clusters would be NACKed: %v", err)
	}
	var vi *listenerv3.Listener
	for _, l := range listeners {
		if err := (&listenerManager{}).validate(l); err != nil {
			t.Errorf("istiod's listener %s would be NACKed: %v", l.GetName(), err)
		}
		if l.GetName() == "virtualInbound" {
			vi = l
		}
	}
	for _, want := range []string{"PassthroughCluster", "BlackHoleCluster", "InboundPassthroughCluster"} {
		if clusters[want] == nil {
			t.Errorf("no %s in the capture", want)
		}
	}
	if vi == nil {
		t.Fatal("no virtualInbound")
	}
	vmIP := netip.MustParseAddr("10.233.1.11")
	for _, c := range []struct {
		port      uint16
		transport string
		alpn      []string
		want      string
		tls       bool
	}{
		{8080, "tls", []string{"istio-http/1.1", "istio", "http/1.1"}, "virtualInbound-catchall-http", true},
		{8080, "raw_buffer", []string{"http/1.1"}, "virtualInbound-catchall-http", false},
		{8080, "tls", []string{"istio-peer-exchange", "istio"}, "virtualInbound", true},
		{8080, "raw_buffer", nil, "virtualInbound", false},
		{15006, "raw_buffer", nil, "virtualInbound-blackhole", false},
	} {
		fc := matchFilterChain(vi, &connInfo{dst: netip.AddrPortFrom(vmIP, c.port), src: netip.MustParseAddrPort("10.233.1.1:40000"), transportProtocol: c.transport, alpn: c.alpn})
		if fc == nil || fc.GetName() != c.want || (fc.GetTransportSocket() != nil) != c.tls {
			t.Errorf("port %d %s %v: got %q, want %q (tls %v)", c.port, c.transport, c.alpn, fc.GetName(), c.want, c.tls)
		}
	}
	// the stand-in's own admin output in that capture kept Envoy's envelope
	var env struct {
		Configs []map[string]any `json:"configs"`
	}
	if err := json.Unmarshal([]byte(raw), &env); err != nil || len(env.Configs) != 6 {
		t.Errorf("config_dump envelope: %v, %d sections", err, len(env.Configs))
	}
}

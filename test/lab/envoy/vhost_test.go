package main

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Istio's outbound routes list service hosts without ports and set ignore_port_in_host_matching
// (pilot/pkg/networking/core/httproute.go); a client sends "Host: name:port". Envoy strips the port before
// matching when that flag is set, and matches the Host as sent when it is not.
func TestVirtualHostIgnoresPortOnlyWhenConfigured(t *testing.T) {
	rc := &routev3.RouteConfiguration{
		Name: "15014",
		VirtualHosts: []*routev3.VirtualHost{
			{Name: "istiod.istio-system.svc.cluster.local:15014", Domains: []string{"istiod.istio-system.svc.cluster.local", "10.96.1.10"}},
			{Name: "allow_any", Domains: []string{"*"}},
		},
	}
	for _, tc := range []struct {
		ignorePort bool
		host, want string
	}{
		{true, "istiod.istio-system.svc.cluster.local:15014", "istiod.istio-system.svc.cluster.local:15014"},
		{true, "10.96.1.10:15014", "istiod.istio-system.svc.cluster.local:15014"},
		{true, "istiod.istio-system.svc.cluster.local", "istiod.istio-system.svc.cluster.local:15014"},
		{true, "10.233.0.1:15014", "allow_any"},
		{false, "istiod.istio-system.svc.cluster.local:15014", "allow_any"},
		{false, "istiod.istio-system.svc.cluster.local", "istiod.istio-system.svc.cluster.local:15014"},
	} {
		rc.IgnorePortInHostMatching = tc.ignorePort
		if got := selectVirtualHost(rc, tc.host).GetName(); got != tc.want {
			t.Errorf("ignore_port_in_host_matching=%v, Host %q: virtual host %q, want %q", tc.ignorePort, tc.host, got, tc.want)
		}
	}
	if got := hostWithoutPort("[fd00::1]:8080"); got != "[fd00::1]" {
		t.Errorf("hostWithoutPort(IPv6) = %q", got)
	}
}

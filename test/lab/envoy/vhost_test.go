package main

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Istio's sidecar routes list virtual host domains without ports and set ignore_port_in_host_matching
// (pilot/pkg/networking/core/httproute.go): "Host: a.b:8080" must pick the a.b virtual host, not the catch-all.
func TestSelectVirtualHostIgnoresPortWhenAsked(t *testing.T) {
	rc := &routev3.RouteConfiguration{
		IgnorePortInHostMatching: true,
		VirtualHosts: []*routev3.VirtualHost{
			{Name: "svc", Domains: []string{"t2.ns.example", "t2.ns.example."}},
			{Name: "allow_any", Domains: []string{"*"}},
		},
	}
	for host, want := range map[string]string{
		"t2.ns.example:8080": "svc",
		"t2.ns.example":      "svc",
		"other:8080":         "allow_any",
		"[::1]:8080":         "allow_any",
	} {
		if got := selectVirtualHost(rc, host).GetName(); got != want {
			t.Errorf("host %q: virtual host %q, want %q", host, got, want)
		}
	}
	// Without the flag the port is part of the match (Envoy's default).
	rc.IgnorePortInHostMatching = false
	if got := selectVirtualHost(rc, "t2.ns.example:8080").GetName(); got != "allow_any" {
		t.Errorf("without ignore_port_in_host_matching: %q, want allow_any", got)
	}
	for in, want := range map[string]string{"a.b:80": "a.b", "[::1]:80": "[::1]", "::1": "::1", "a.b": "a.b", "[::1]": "[::1]"} {
		if got := hostWithoutPort(in); got != want {
			t.Errorf("hostWithoutPort(%q) = %q, want %q", in, got, want)
		}
	}
}

package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	hrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	nrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// allowFrom is what istiod renders for an ALLOW AuthorizationPolicy with `from.source.principals`
// (pilot/pkg/security/authz/model: filter_state io.istio.peer_principal, regex or exact with spiffe://).
func allowFrom(principal string) *rbacv3.RBAC {
	return &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"ns[vm-ns]-policy[allow-sleep]-rule[0]": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}}}}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{
				{Identifier: &rbacv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{Key: "io.istio.peer_principal",
					Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: principal}}}}}},
			}}}}}}}}},
		}}}
}

// withRBAC puts an HTTP RBAC filter in front of the router of every HCM chain, and a network RBAC filter
// first on every tcp_proxy chain, as istiod does when AuthorizationPolicies select the workload.
func withRBAC(l *listenerv3.Listener, httpRules, netRules *rbacv3.RBAC) *listenerv3.Listener {
	for _, fc := range l.GetFilterChains() {
		var out []*listenerv3.Filter
		for _, f := range fc.GetFilters() {
			switch f.GetTypedConfig().GetTypeUrl() {
			case hcmType:
				h := &hcmv3.HttpConnectionManager{}
				_ = f.GetTypedConfig().UnmarshalTo(h)
				rf := &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(&hrbacv3.RBAC{Rules: httpRules})}}
				h.HttpFilters = append([]*hcmv3.HttpFilter{rf}, h.HttpFilters...)
				f = &listenerv3.Filter{Name: f.GetName(), ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(h)}}
			case tcpProxyType:
				if netRules != nil {
					out = append(out, &listenerv3.Filter{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(&nrbacv3.RBAC{StatPrefix: "tcp.", Rules: netRules})}})
				}
			}
			out = append(out, f)
		}
		fc.Filters = out
	}
	return l
}

func TestRBACFromAuthorizationPolicy(t *testing.T) {
	p := newPKI(t, "cluster.local")
	m := newMesh(t, "", p, "spiffe://cluster.local/ns/vm-ns/sa/vm-sa")
	denyLoopback := &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{"deny-loopback": {
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
		Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: &corev3.CidrRange{AddressPrefix: "127.0.0.0", PrefixLen: wrapperspb.UInt32(8)}}}}}}}
	vi := withRBAC(virtualInbound(m.inPort, m.app.port, false), allowFrom("spiffe://cluster.local/ns/default/sa/sleep"), denyLoopback)
	m.extraRes = map[resourcev3.Type][]types.Resource{}
	m.cp.set(t, testNodeID, "1", map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType: append(baseClusters(), inboundCluster(m.app.port)), resourcev3.ListenerType: {vi},
		resourcev3.SecretType: istioSecrets(m.cert, m.key, p.caPEM)})
	m.waitLive(t)
	if n := m.cp.nackList(); len(n) > 0 {
		t.Fatalf("istiod-shaped RBAC NACKed: %v", n)
	}
	appDst := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", m.app.port))
	call := func(spiffe string) (int, string) {
		cert, key := p.workload(t, spiffe)
		c := m.st.dialRedirected(t, m.inPort, appDst)
		tc := tls.Client(c, clientTLS(cert, key, p.caPEM, []string{"istio-http/1.1"}))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return httpOver(t, tc, "vm-app.vm-ns.svc.cluster.local")
	}
	if code, body := call("spiffe://cluster.local/ns/default/sa/sleep"); code != 200 {
		t.Errorf("allowed principal: %d %q", code, body)
	}
	if code, body := call("spiffe://cluster.local/ns/default/sa/intruder"); code != 403 || body != "RBAC: access denied" {
		t.Errorf("other principal: %d %q, want 403 RBAC: access denied", code, body)
	}
	// plaintext has no principal: the ALLOW policy does not match
	c := m.st.dialRedirected(t, m.inPort, appDst)
	if code, _ := httpOver(t, c, "vm-app.vm-ns.svc.cluster.local"); code != 403 {
		t.Errorf("plaintext under an ALLOW-principals policy: %d, want 403", code)
	}
	// network RBAC DENY on the TCP catch-all: the connection is closed before proxying
	echo := startTCPEcho(t)
	c = m.st.dialRedirected(t, m.inPort, echo)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = c.Write([]byte("ping\n"))
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Errorf("network RBAC DENY let bytes through: %q", b)
	}
	c.Close()
	if m.st.srv.stats.get("tcp.rbac.denied") != 1 {
		t.Errorf("tcp.rbac.denied = %d", m.st.srv.stats.get("tcp.rbac.denied"))
	}
	// and the default stats_matcher includes the rbac suffixes (bootstrap inclusion list)
	if _, s, _ := m.st.get("/stats?filter=rbac"); !strings.Contains(s, "tcp.rbac.denied: 1") {
		t.Errorf("/stats lacks tcp.rbac.denied:\n%s", s)
	}

	// what the stand-in cannot evaluate is NACKed, never guessed
	unsupported := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{"jwt": {
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
		Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{Filter: "envoy.filters.http.ext_authz"}}}}}}}
	m.cp.set(t, testNodeID, "2", map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType: append(baseClusters(), inboundCluster(m.app.port)), resourcev3.ListenerType: {withRBAC(virtualInbound(m.inPort, m.app.port, false), unsupported, nil)},
		resourcev3.SecretType: istioSecrets(m.cert, m.key, p.caPEM)})
	waitFor(t, "NACK of unsupported RBAC", func() bool { return len(m.cp.nackList()) > 0 })
	if n := m.cp.nackList()[0]; !strings.Contains(n, "RBAC policy jwt: RBAC metadata principal on \"envoy.filters.http.ext_authz\" is not supported by the stand-in") {
		t.Errorf("NACK: %s", n)
	}
}

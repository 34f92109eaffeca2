package main

// RBAC (what istiod renders from AuthorizationPolicy, pilot/pkg/security/authz): envoy.filters.network.rbac at
// connection start and envoy.filters.http.rbac per request. ALLOW rules allow a request when a policy matches,
// DENY rules deny it when one matches, LOG changes nothing; a policy matches when any permission and any
// principal match (https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/rbac/v3/rbac.proto). Supported:
// any, and/or/not, destination_port(_range), destination_ip, requested_server_name, header, url_path
// (permissions); any, and/or/not, authenticated.principal_name, filter_state io.istio.peer_principal (set from the
// peer certificate, as istio_authn does), source_ip/direct_remote_ip/remote_ip, header, url_path (principals).
// Metadata matchers on istio_authn (request.auth.claims, from RequestAuthentication/JWT) never match: the stand-in
// validates no JWTs, so no request carries claims (as in Envoy for a request without a valid token).
// Anything else (other metadata, CEL conditions, matcher trees) is refused at LDS time (NACK), never guessed.

import (
	"fmt"
	"net/http"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	hrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	nrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

const (
	networkRBACType = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
	httpRBACType    = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
	peerPrincipalFS = "io.istio.peer_principal"
)

type rbacInput struct {
	info *connInfo
	req  *http.Request // nil for the network filter
}

func cidrContains(c *corev3.CidrRange, ip netip.Addr) bool {
	a, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return false
	}
	bits := int(c.GetPrefixLen().GetValue())
	p, err := a.Prefix(bits)
	return err == nil && p.Contains(ip.Unmap())
}

func pathMatch(pm *matcherv3.PathMatcher, r *http.Request) bool {
	if r == nil {
		return false
	}
	return matchString(pm.GetPath(), r.URL.Path)
}

func permissionMatches(p *rbacv3.Permission, in *rbacInput) bool {
	switch x := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		return x.Any
	case *rbacv3.Permission_AndRules:
		for _, r := range x.AndRules.GetRules() {
			if !permissionMatches(r, in) {
				return false
			}
		}
		return true
	case *rbacv3.Permission_OrRules:
		for _, r := range x.OrRules.GetRules() {
			if permissionMatches(r, in) {
				return true
			}
		}
		return false
	case *rbacv3.Permission_NotRule:
		return !permissionMatches(x.NotRule, in)
	case *rbacv3.Permission_DestinationPort:
		return uint32(in.info.dst.Port()) == x.DestinationPort
	case *rbacv3.Permission_DestinationPortRange:
		port := int32(in.info.dst.Port())
		return port >= x.DestinationPortRange.GetStart() && port < x.DestinationPortRange.GetEnd()
	case *rbacv3.Permission_DestinationIp:
		return cidrContains(x.DestinationIp, in.info.dst.Addr())
	case *rbacv3.Permission_RequestedServerName:
		return matchString(x.RequestedServerName, in.info.serverName)
	case *rbacv3.Permission_Header:
		return in.req != nil && headerMatches(x.Header, in.req)
	case *rbacv3.Permission_UrlPath:
		return pathMatch(x.UrlPath, in.req)
	case *rbacv3.Permission_Metadata:
		return false // istio_authn JWT claims: none (see above)
	}
	return false
}

func principalMatches(p *rbacv3.Principal, in *rbacInput) bool {
	switch x := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		return x.Any
	case *rbacv3.Principal_AndIds:
		for _, id := range x.AndIds.GetIds() {
			if !principalMatches(id, in) {
				return false
			}
		}
		return true
	case *rbacv3.Principal_OrIds:
		for _, id := range x.OrIds.GetIds() {
			if principalMatches(id, in) {
				return true
			}
		}
		return false
	case *rbacv3.Principal_NotId:
		return !principalMatches(x.NotId, in)
	case *rbacv3.Principal_Authenticated_:
		if !in.info.mutualTLS {
			return false
		}
		if x.Authenticated.GetPrincipalName() == nil {
			return true
		}
		return matchString(x.Authenticated.GetPrincipalName(), in.info.peerPrincipal)
	case *rbacv3.Principal_FilterState:
		// istio_authn stores the verified peer identity (its SPIFFE URI) as io.istio.peer_principal; istiod's
		// matchers carry the "spiffe://" prefix (pilot/pkg/security/authz/model/generator.go)
		if !in.info.mutualTLS || in.info.peerPrincipal == "" {
			return false
		}
		return matchString(x.FilterState.GetStringMatch(), in.info.peerPrincipal)
	case *rbacv3.Principal_SourceIp:
		return cidrContains(x.SourceIp, in.info.src.Addr())
	case *rbacv3.Principal_DirectRemoteIp:
		return cidrContains(x.DirectRemoteIp, in.info.src.Addr())
	case *rbacv3.Principal_RemoteIp:
		return cidrContains(x.RemoteIp, in.info.src.Addr())
	case *rbacv3.Principal_Header:
		return in.req != nil && headerMatches(x.Header, in.req)
	case *rbacv3.Principal_UrlPath:
		return pathMatch(x.UrlPath, in.req)
	case *rbacv3.Principal_Metadata:
		return false // istio_authn JWT claims: none (see above)
	}
	return false
}

// rbacDecision returns whether the rules allow the input, and the matched policy name.
func rbacDecision(rules *rbacv3.RBAC, in *rbacInput) (bool, string) {
	if rules == nil {
		return true, ""
	}
	matched := ""
	for _, name := range sortedKeys(rules.GetPolicies()) {
		pol := rules.GetPolicies()[name]
		perm, prin := false, false
		for _, p := range pol.GetPermissions() {
			if permissionMatches(p, in) {
				perm = true
				break
			}
		}
		for _, p := range pol.GetPrincipals() {
			if principalMatches(p, in) {
				prin = true
				break
			}
		}
		if perm && prin {
			matched = name
			break
		}
	}
	switch rules.GetAction() {
	case rbacv3.RBAC_ALLOW:
		return matched != "", matched
	case rbacv3.RBAC_DENY:
		return matched == "", matched
	}
	return true, matched
}

// ---- validation: refuse what is not implemented ----

func checkPermission(p *rbacv3.Permission) error {
	switch x := p.GetRule().(type) {
	case *rbacv3.Permission_Any, *rbacv3.Permission_DestinationPort, *rbacv3.Permission_DestinationPortRange,
		*rbacv3.Permission_DestinationIp, *rbacv3.Permission_RequestedServerName, *rbacv3.Permission_Header, *rbacv3.Permission_UrlPath:
		return nil
	case *rbacv3.Permission_AndRules:
		for _, r := range x.AndRules.GetRules() {
			if err := checkPermission(r); err != nil {
				return err
			}
		}
		return nil
	case *rbacv3.Permission_OrRules:
		for _, r := range x.OrRules.GetRules() {
			if err := checkPermission(r); err != nil {
				return err
			}
		}
		return nil
	case *rbacv3.Permission_NotRule:
		return checkPermission(x.NotRule)
	case *rbacv3.Permission_Metadata:
		if x.Metadata.GetFilter() == "istio_authn" {
			return nil
		}
		return fmt.Errorf("RBAC metadata permission on %q is not supported by the stand-in", x.Metadata.GetFilter())
	}
	return fmt.Errorf("RBAC permission %T is not supported by the stand-in", p.GetRule())
}

func checkPrincipal(p *rbacv3.Principal) error {
	switch x := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any, *rbacv3.Principal_Authenticated_, *rbacv3.Principal_SourceIp, *rbacv3.Principal_DirectRemoteIp,
		*rbacv3.Principal_RemoteIp, *rbacv3.Principal_Header, *rbacv3.Principal_UrlPath:
		return nil
	case *rbacv3.Principal_FilterState:
		if x.FilterState.GetKey() == peerPrincipalFS && x.FilterState.GetStringMatch() != nil {
			return nil
		}
		return fmt.Errorf("RBAC filter_state principal %q is not supported by the stand-in", x.FilterState.GetKey())
	case *rbacv3.Principal_AndIds:
		for _, id := range x.AndIds.GetIds() {
			if err := checkPrincipal(id); err != nil {
				return err
			}
		}
		return nil
	case *rbacv3.Principal_OrIds:
		for _, id := range x.OrIds.GetIds() {
			if err := checkPrincipal(id); err != nil {
				return err
			}
		}
		return nil
	case *rbacv3.Principal_NotId:
		return checkPrincipal(x.NotId)
	case *rbacv3.Principal_Metadata:
		if x.Metadata.GetFilter() == "istio_authn" {
			return nil
		}
		return fmt.Errorf("RBAC metadata principal on %q is not supported by the stand-in", x.Metadata.GetFilter())
	}
	return fmt.Errorf("RBAC principal %T is not supported by the stand-in", p.GetIdentifier())
}

func checkRules(rules *rbacv3.RBAC) error {
	for name, pol := range rules.GetPolicies() {
		if pol.GetCondition() != nil || pol.GetCheckedCondition() != nil {
			return fmt.Errorf("RBAC policy %s: CEL conditions are not supported by the stand-in", name)
		}
		for _, p := range pol.GetPermissions() {
			if err := checkPermission(p); err != nil {
				return fmt.Errorf("RBAC policy %s: %v", name, err)
			}
		}
		for _, p := range pol.GetPrincipals() {
			if err := checkPrincipal(p); err != nil {
				return fmt.Errorf("RBAC policy %s: %v", name, err)
			}
		}
	}
	return nil
}

func validateNetworkRBAC(n *nrbacv3.RBAC) error {
	if n.GetMatcher() != nil {
		return fmt.Errorf("RBAC matcher trees are not supported by the stand-in")
	}
	return checkRules(n.GetRules())
}

func validateHTTPRBAC(h *hrbacv3.RBAC) error {
	if h.GetMatcher() != nil {
		return fmt.Errorf("RBAC matcher trees are not supported by the stand-in")
	}
	return checkRules(h.GetRules())
}

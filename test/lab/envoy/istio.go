package main

// Istio standard metrics (istio.stats filter): the label set and order of istio/proxy's tests
// (../shared/envoy-reference/stats/istio_requests_total.server_side.istio-proxy-testdata.yaml.tmpl) and
// https://istio.io/latest/docs/reference/config/metrics/. The stat name carries the tags as
// "k=.=v;.;" pairs, which the bootstrap's stats_tags turn into Prometheus labels. Peer workload metadata
// (metadata exchange) is not implemented: the peer's principal comes from its certificate, the rest is "unknown".

import (
	"crypto/tls"
	"net"
	"net/http"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

var istioRequestLabelOrder = []string{
	"reporter", "source_workload", "source_canonical_service", "source_canonical_revision",
	"source_workload_namespace", "source_principal", "source_app", "source_version", "source_cluster",
	"destination_workload", "destination_workload_namespace", "destination_principal", "destination_app",
	"destination_version", "destination_service", "destination_canonical_service",
	"destination_canonical_revision", "destination_service_name", "destination_service_namespace",
	"destination_cluster", "request_protocol", "response_code", "grpc_response_status", "response_flags",
	"connection_security_policy",
}

func istioStatName(metric string, labels map[string]string, order []string) string {
	var b strings.Builder
	for _, k := range order {
		v, ok := labels[k]
		if !ok || v == "" && k != "grpc_response_status" {
			v = "unknown"
		}
		b.WriteString(k + "=.=" + v + ";.;")
	}
	return b.String() + metric
}

func (s *server) nodeMeta(key string) string {
	v := s.bs.GetNode().GetMetadata().GetFields()[key]
	return v.GetStringValue()
}

func (s *server) nodeLabel(key string) string {
	return s.bs.GetNode().GetMetadata().GetFields()["LABELS"].GetStructValue().GetFields()[key].GetStringValue()
}

func (s *server) ownPrincipal() string {
	if sec := s.lookupSecret("default"); sec != nil {
		if certs := secretCerts(sec); len(certs) > 0 && len(certs[0].URIs) > 0 {
			return certs[0].URIs[0].String()
		}
	}
	return ""
}

// selfLabels fills the side of the labels that describes this proxy's workload.
func (s *server) selfLabels(side string, l map[string]string) {
	workload := s.nodeMeta("WORKLOAD_NAME")
	if workload == "" {
		workload = s.nodeMeta("NAME")
	}
	app := s.nodeLabel("app")
	version := s.nodeLabel("version")
	canon := s.nodeLabel("service.istio.io/canonical-name")
	if canon == "" {
		canon = app
	}
	if canon == "" {
		canon = workload
	}
	rev := s.nodeLabel("service.istio.io/canonical-revision")
	if rev == "" {
		rev = version
	}
	if rev == "" {
		rev = "latest"
	}
	l[side+"_workload"] = workload
	l[side+"_canonical_service"] = canon
	l[side+"_canonical_revision"] = rev
	l[side+"_workload_namespace"] = s.nodeMeta("NAMESPACE")
	l[side+"_principal"] = s.ownPrincipal()
	l[side+"_app"] = app
	l[side+"_version"] = version
	l[side+"_cluster"] = s.nodeMeta("CLUSTER_ID")
}

func isInbound(l *listenerv3.Listener) bool {
	if l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND {
		return true
	}
	return l.GetTrafficDirection() == corev3.TrafficDirection_UNSPECIFIED && l.GetName() == "virtualInbound"
}

// serviceFromCluster parses Istio's cluster name "outbound|port|subset|host".
func serviceFromCluster(name string) (host, svc, ns string) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 || parts[3] == "" {
		return "", "", ""
	}
	host = parts[3]
	labels := strings.Split(host, ".")
	svc = labels[0]
	if len(labels) > 1 {
		ns = labels[1]
	}
	return host, svc, ns
}

func (s *server) istioLabels(info *connInfo, clusterName, authority, upstreamPeer string) map[string]string {
	l := map[string]string{}
	if isInbound(info.listener.cfg) {
		l["reporter"] = "destination"
		s.selfLabels("destination", l)
		l["source_principal"] = info.peerPrincipal
		host := authority
		if h, _, err := net.SplitHostPort(authority); err == nil {
			host = h
		}
		if h, svc, ns := serviceFromCluster(clusterName); h != "" {
			host = h
			l["destination_service_name"], l["destination_service_namespace"] = svc, ns
		} else if host != "" {
			labels := strings.Split(host, ".")
			l["destination_service_name"] = labels[0]
			if len(labels) > 1 {
				l["destination_service_namespace"] = labels[1]
			}
		}
		l["destination_service"] = host
		if info.mutualTLS {
			l["connection_security_policy"] = "mutual_tls"
		} else {
			l["connection_security_policy"] = "none"
		}
		return l
	}
	l["reporter"] = "source"
	s.selfLabels("source", l)
	host, svc, ns := serviceFromCluster(clusterName)
	if host == "" {
		host = authority
	}
	l["destination_service"], l["destination_service_name"], l["destination_service_namespace"] = host, svc, ns
	l["destination_principal"] = upstreamPeer
	l["connection_security_policy"] = "unknown"
	return l
}

func hasHTTPFilter(h *hcmv3.HttpConnectionManager, name string) bool {
	for _, f := range h.GetHttpFilters() {
		if f.GetName() == name {
			return true
		}
	}
	return false
}

func (s *server) recordIstioRequest(h *hcmv3.HttpConnectionManager, info *connInfo, r *http.Request, rec *requestRecord) {
	if !hasHTTPFilter(h, "istio.stats") {
		return
	}
	l := s.istioLabels(info, rec.cluster, r.Host, rec.upstreamPeer)
	l["request_protocol"] = "http"
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		l["request_protocol"] = "grpc"
	}
	l["response_code"] = itoa(rec.responseCode)
	l["grpc_response_status"] = ""
	l["response_flags"] = rec.responseFlags
	s.stats.inc(istioStatName("istio_requests_total", l, istioRequestLabelOrder))
}

func (s *server) recordIstioTCP(fc *listenerv3.FilterChain, info *connInfo, c *clusterv3.Cluster, upConn net.Conn) {
	found := false
	for _, f := range fc.GetFilters() {
		if f.GetName() == "istio.stats" {
			found = true
		}
	}
	if !found {
		return
	}
	peer := ""
	if tc, ok := upConn.(*tls.Conn); ok {
		if st := tc.ConnectionState(); len(st.PeerCertificates) > 0 && len(st.PeerCertificates[0].URIs) > 0 {
			peer = st.PeerCertificates[0].URIs[0].String()
		}
	}
	l := s.istioLabels(info, c.GetName(), "", peer)
	l["response_flags"] = "-"
	order := make([]string, 0, len(istioRequestLabelOrder))
	for _, k := range istioRequestLabelOrder {
		if k != "request_protocol" && k != "response_code" && k != "grpc_response_status" {
			order = append(order, k)
		}
	}
	s.stats.inc(istioStatName("istio_tcp_connections_opened_total", l, order))
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	neg := i < 0
	if neg {
		i = -i
	}
	var b []byte
	for i > 0 {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
	}
	if neg {
		return "-" + string(b)
	}
	return string(b)
}

package main

// ADS client: one gRPC stream to the cluster named by ads_config (pilot-agent's XDS proxy on a Unix socket),
// DELTA_GRPC (Istio's default bootstrap) or GRPC (state of the world), in Envoy's order: CDS, then EDS for the
// EDS clusters, then LDS, then RDS for the route configs the listeners name. Responses are ACKed with the
// nonce (and version for SotW) or NACKed with error_detail, as the xDS protocol says:
// https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol

import (
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

const (
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	typeSecret   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)

type subscription struct {
	wildcard  bool
	names     map[string]bool
	requested bool
	version   string // SotW: last accepted version_info
}

type adsClient struct {
	s           *server
	cluster     string
	delta       bool
	sendMu      sync.Mutex
	send        func(any) error
	subMu       sync.Mutex
	subs        map[string]*subscription
	nodeSent    bool
	ldsTimer    *time.Timer
	ldsDeferred bool
	// conn is the HTTP/2 connection to the xds-grpc cluster (pilot-agent's socket), kept across streams as
	// Envoy's gRPC client keeps it: a closed ADS stream is retried on the same connection, so
	// upstream_cx_active stays 1 while upstream_rq_active (the open stream) drops to 0.
	conn *grpc.ClientConn
}

func newADSClient(s *server, ads *corev3.ApiConfigSource) (*adsClient, error) {
	gs := ads.GetGrpcServices()
	if len(gs) == 0 || gs[0].GetEnvoyGrpc() == nil {
		return nil, fmt.Errorf("ads_config: only envoy_grpc services are supported")
	}
	c := &adsClient{s: s, cluster: gs[0].GetEnvoyGrpc().GetClusterName(), subs: map[string]*subscription{}}
	switch ads.GetApiType() {
	case corev3.ApiConfigSource_DELTA_GRPC:
		c.delta = true
	case corev3.ApiConfigSource_GRPC:
	default:
		return nil, fmt.Errorf("ads_config: api_type %s is not supported", ads.GetApiType())
	}
	c.subs[typeCluster] = &subscription{wildcard: true, names: map[string]bool{}, requested: true}
	c.subs[typeListener] = &subscription{wildcard: true, names: map[string]bool{}}
	c.subs[typeEndpoint] = &subscription{names: map[string]bool{}}
	c.subs[typeRoute] = &subscription{names: map[string]bool{}}
	return c, nil
}

// dialCluster connects gRPC to the first endpoint of a static cluster (a pipe for xds-grpc and sds-grpc).
func (s *server) dialCluster(name string) (*grpc.ClientConn, error) {
	c := s.lookupCluster(name)
	if c == nil {
		return nil, fmt.Errorf("unknown gRPC cluster %q", name)
	}
	eps := c.GetLoadAssignment().GetEndpoints()
	if len(eps) == 0 || len(eps[0].GetLbEndpoints()) == 0 {
		return nil, fmt.Errorf("cluster %q has no endpoints", name)
	}
	addr := eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress()
	network, target := "tcp", socketAddrString(addr)
	if addr.GetPipe() != nil {
		network = "unix"
	}
	statName := "cluster." + clusterStatName(c) + "."
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, target)
		if err != nil {
			s.stats.inc(statName + "upstream_cx_connect_fail")
			return nil, err
		}
		s.stats.inc(statName + "upstream_cx_total")
		s.stats.gaugeAdd(statName+"upstream_cx_active", 1)
		return &countedConn{Conn: conn, onClose: func() { s.stats.gaugeAdd(statName+"upstream_cx_active", -1) }}, nil
	}
	return grpc.NewClient("passthrough:///"+name,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dialer),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
}

type countedConn struct {
	net.Conn
	once    sync.Once
	onClose func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.onClose)
	return c.Conn.Close()
}

func (c *adsClient) node() *corev3.Node {
	n := proto.Clone(c.s.bs.GetNode()).(*corev3.Node)
	if n == nil {
		n = &corev3.Node{}
	}
	n.UserAgentName = "envoy"
	n.UserAgentVersionType = &corev3.Node_UserAgentBuildVersion{UserAgentBuildVersion: &corev3.BuildVersion{}}
	return n
}

func (c *adsClient) run(ctx context.Context) {
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		err := c.stream(ctx)
		c.s.stats.set("control_plane.connected_state", 0)
		if ctx.Err() != nil {
			return
		}
		c.s.logf("warning", "config", "%s gRPC config stream to %s closed: %s", c.streamName(), c.cluster, grpcStatusText(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 8*time.Second {
			backoff *= 2
		}
	}
}

func (c *adsClient) streamName() string {
	if c.delta {
		return "DeltaAggregatedResources"
	}
	return "StreamAggregatedResources"
}

// grpcStatusText renders an error as Envoy logs a closed config stream: "<code number>, <message>".
func grpcStatusText(err error) string {
	st, _ := status.FromError(err)
	return fmt.Sprintf("%d, %s", int(st.Code()), st.Message())
}

// openStream counts an ADS stream as Envoy does: one active request on the xds-grpc cluster while it is
// open. pilot-agent ends that stream when its own stream to istiod fails (pkg/istio-agent/xds_proxy_delta.go).
func (c *adsClient) openStream() func() {
	name := "cluster." + c.cluster + "."
	if cl := c.s.lookupCluster(c.cluster); cl != nil {
		name = "cluster." + clusterStatName(cl) + "."
	}
	c.s.stats.inc(name + "upstream_rq_total")
	c.s.stats.gaugeAdd(name+"upstream_rq_active", 1)
	var once sync.Once
	return func() { once.Do(func() { c.s.stats.gaugeAdd(name+"upstream_rq_active", -1) }) }
}

func (c *adsClient) stream(ctx context.Context) error {
	if c.conn == nil {
		conn, err := c.s.dialCluster(c.cluster)
		if err != nil {
			return err
		}
		c.conn = conn
		go func() { <-ctx.Done(); _ = conn.Close() }()
	}
	conn := c.conn
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer c.setSend(nil) // nothing is sent on a stream that ended
	client := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	c.subMu.Lock()
	c.nodeSent = false
	c.subMu.Unlock()
	if c.delta {
		st, err := client.DeltaAggregatedResources(sctx)
		if err != nil {
			return err
		}
		defer c.openStream()()
		c.setSend(func(m any) error { return st.Send(m.(*discoveryv3.DeltaDiscoveryRequest)) })
		c.s.stats.set("control_plane.connected_state", 1)
		c.resubscribe()
		for {
			resp, err := st.Recv()
			if err != nil {
				return err
			}
			c.handleDelta(resp)
		}
	}
	st, err := client.StreamAggregatedResources(sctx)
	if err != nil {
		return err
	}
	defer c.openStream()()
	c.setSend(func(m any) error { return st.Send(m.(*discoveryv3.DiscoveryRequest)) })
	c.s.stats.set("control_plane.connected_state", 1)
	c.resubscribe()
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		c.handleSotW(resp)
	}
}

func (c *adsClient) setSend(f func(any) error) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.send = f
}

// resubscribe sends the current interest for every requested type on a new stream, CDS first.
func (c *adsClient) resubscribe() {
	for _, t := range []string{typeCluster, typeEndpoint, typeListener, typeRoute} {
		c.subMu.Lock()
		sub := c.subs[t]
		req := sub.requested && (sub.wildcard || len(sub.names) > 0)
		c.subMu.Unlock()
		if req {
			c.request(t, true, nil, nil)
		}
	}
}

// request sends a subscription request; initial=true re-sends the whole interest (new stream).
func (c *adsClient) request(typeURL string, initial bool, subscribe, unsubscribe []string) {
	c.subMu.Lock()
	sub := c.subs[typeURL]
	sub.requested = true
	var node *corev3.Node
	if !c.nodeSent {
		node = c.node()
		c.nodeSent = true
	}
	names := sortedKeys(sub.names)
	c.subMu.Unlock()
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.send == nil {
		return
	}
	if c.delta {
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, Node: node}
		if initial {
			if !sub.wildcard {
				req.ResourceNamesSubscribe = names
			}
			req.InitialResourceVersions = c.knownVersions(typeURL)
		} else {
			req.ResourceNamesSubscribe, req.ResourceNamesUnsubscribe = subscribe, unsubscribe
		}
		_ = c.send(req)
		return
	}
	req := &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, Node: node, VersionInfo: sub.version}
	if !sub.wildcard {
		req.ResourceNames = names
	}
	_ = c.send(req)
}

func (c *adsClient) knownVersions(typeURL string) map[string]string {
	out := map[string]string{}
	c.s.mu.RLock()
	defer c.s.mu.RUnlock()
	switch typeURL {
	case typeCluster:
		for n, r := range c.s.clusters {
			out[n] = r.version
		}
	case typeListener:
		for n, r := range c.s.listeners {
			out[n] = r.version
		}
	case typeEndpoint:
		for n, r := range c.s.endpoints {
			out[n] = r.version
		}
	case typeRoute:
		for n, r := range c.s.routes {
			out[n] = r.version
		}
	}
	return out
}

func (c *adsClient) ack(typeURL, nonce, version string, applyErr error) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	var detail *statuspb.Status
	if applyErr != nil {
		detail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: applyErr.Error()}
	}
	if c.send == nil {
		return
	}
	if c.delta {
		_ = c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResponseNonce: nonce, ErrorDetail: detail})
		return
	}
	c.subMu.Lock()
	sub := c.subs[typeURL]
	if applyErr == nil {
		sub.version = version
	}
	req := &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResponseNonce: nonce, VersionInfo: sub.version, ErrorDetail: detail}
	if !sub.wildcard {
		req.ResourceNames = sortedKeys(sub.names)
	}
	c.subMu.Unlock()
	_ = c.send(req)
}

type namedAny struct {
	name, version string
	res           *anypb.Any
}

func (c *adsClient) handleDelta(resp *discoveryv3.DeltaDiscoveryResponse) {
	var items []namedAny
	for _, r := range resp.GetResources() {
		items = append(items, namedAny{r.GetName(), r.GetVersion(), r.GetResource()})
	}
	c.apply(resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo(), items, resp.GetRemovedResources(), false)
}

func (c *adsClient) handleSotW(resp *discoveryv3.DiscoveryResponse) {
	var items []namedAny
	for _, r := range resp.GetResources() {
		items = append(items, namedAny{"", resp.GetVersionInfo(), r})
	}
	c.apply(resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo(), items, nil, true)
}

func versionHash(v string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(v))
	return h.Sum64()
}

func decodeAll[T proto.Message](items []namedAny, mk func() T, nameOf func(T) string) (map[string]T, map[string]string, error) {
	out, versions := map[string]T{}, map[string]string{}
	for _, it := range items {
		if it.res == nil {
			return nil, nil, fmt.Errorf("resource %q has no body", it.name)
		}
		m := mk()
		if err := it.res.UnmarshalTo(m); err != nil {
			return nil, nil, fmt.Errorf("cannot decode %s: %v", it.res.GetTypeUrl(), err)
		}
		n := nameOf(m)
		if n == "" {
			n = it.name
		}
		if n == "" {
			return nil, nil, fmt.Errorf("%s without a name", it.res.GetTypeUrl())
		}
		out[n] = m
		versions[n] = it.version
	}
	return out, versions, nil
}

func (c *adsClient) apply(typeURL, nonce, version string, items []namedAny, removed []string, sotw bool) {
	s := c.s
	now := s.clock()
	switch typeURL {
	case typeCluster:
		s.stats.inc("cluster_manager.cds.update_attempt")
		got, vers, err := decodeAll(items, func() *clusterv3.Cluster { return &clusterv3.Cluster{} }, (*clusterv3.Cluster).GetName)
		if err == nil {
			err = validateClusters(got)
		}
		if err != nil {
			s.stats.inc("cluster_manager.cds.update_rejected")
			s.logf("warning", "config", "gRPC config for %s rejected: %v", typeURL, err)
			c.ack(typeURL, nonce, version, err)
			return
		}
		s.mu.Lock()
		if sotw {
			for n := range s.clusters {
				if _, ok := got[n]; !ok {
					delete(s.clusters, n)
				}
			}
		}
		for _, n := range removed {
			delete(s.clusters, n)
		}
		for n, m := range got {
			s.clusters[n] = &xdsResource[*clusterv3.Cluster]{m, vers[n], now}
		}
		wantEDS := map[string]bool{}
		var sdsNames []string
		for _, r := range s.clusters {
			if r.msg.GetType() == clusterv3.Cluster_EDS {
				wantEDS[edsName(r.msg)] = true
			}
			sdsNames = append(sdsNames, clusterSecretNames(r.msg)...)
		}
		s.versions[typeURL] = version
		s.cdsReceived = true
		active := len(s.clusters) + len(s.staticClusters)
		s.mu.Unlock()
		for _, n := range got {
			p := "cluster." + clusterStatName(n) + "."
			s.stats.define(p+"upstream_cx_total", counterStat)
			s.stats.define(p+"upstream_rq_total", counterStat)
		}
		s.stats.inc("cluster_manager.cds.update_success")
		s.stats.set("cluster_manager.cds.version", versionHash(version))
		s.stats.set("cluster_manager.active_clusters", uint64(active))
		s.stats.set("cluster_manager.warming_clusters", 0)
		s.sds.ensure(sdsNames)
		c.updateNames(typeEndpoint, wantEDS) // EDS is requested before CDS is ACKed, as Envoy does
		c.ack(typeURL, nonce, version, nil)
		c.maybeRequestLDS(len(wantEDS) > 0)
		s.checkInitialized()
	case typeEndpoint:
		got, vers, err := decodeAll(items, func() *endpointv3.ClusterLoadAssignment { return &endpointv3.ClusterLoadAssignment{} }, (*endpointv3.ClusterLoadAssignment).GetClusterName)
		if err != nil {
			c.ack(typeURL, nonce, version, err)
			return
		}
		s.mu.Lock()
		for _, n := range removed {
			delete(s.endpoints, n)
		}
		for n, m := range got {
			s.endpoints[n] = &xdsResource[*endpointv3.ClusterLoadAssignment]{m, vers[n], now}
		}
		s.mu.Unlock()
		c.ack(typeURL, nonce, version, nil)
		c.maybeRequestLDS(false)
	case typeListener:
		s.stats.inc("listener_manager.lds.update_attempt")
		got, vers, err := decodeAll(items, func() *listenerv3.Listener { return &listenerv3.Listener{} }, (*listenerv3.Listener).GetName)
		if err == nil {
			for _, l := range got {
				if err = s.listenerMgr.validate(l); err != nil {
					err = fmt.Errorf("Error adding/updating listener(s) %s: %v", l.GetName(), err)
					break
				}
			}
		}
		if err != nil {
			s.stats.inc("listener_manager.lds.update_rejected")
			s.logf("warning", "config", "gRPC config for %s rejected: %v", typeURL, err)
			c.ack(typeURL, nonce, version, err)
			return
		}
		s.mu.Lock()
		var gone []string
		if sotw {
			for n := range s.listeners {
				if _, ok := got[n]; !ok {
					gone = append(gone, n)
				}
			}
		}
		gone = append(gone, removed...)
		for _, n := range gone {
			delete(s.listeners, n)
		}
		for n, m := range got {
			s.listeners[n] = &xdsResource[*listenerv3.Listener]{m, vers[n], now}
		}
		wantRDS := map[string]bool{}
		var sdsNames []string
		for _, r := range s.listeners {
			for _, n := range listenerRouteNames(r.msg) {
				wantRDS[n] = true
			}
			sdsNames = append(sdsNames, listenerSecretNames(r.msg)...)
		}
		for _, n := range sdsNames {
			s.sdsWanted[n] = true
		}
		s.rdsWanted = wantRDS
		s.versions[typeURL] = version
		s.ldsReceived = true
		total := len(s.listeners)
		s.mu.Unlock()
		for _, n := range gone {
			s.listenerMgr.remove(n)
		}
		for _, l := range got {
			if err := s.listenerMgr.addOrUpdate(l, true); err != nil {
				s.logf("warning", "config", "listener %s: %v", l.GetName(), err)
			}
		}
		s.stats.inc("listener_manager.lds.update_success")
		s.stats.set("listener_manager.total_listeners_active", uint64(total+len(s.bs.GetStaticResources().GetListeners())))
		s.sds.ensure(sdsNames)
		c.updateNames(typeRoute, wantRDS)
		c.ack(typeURL, nonce, version, nil)
		s.checkInitialized()
	case typeRoute:
		got, vers, err := decodeAll(items, func() *routev3.RouteConfiguration { return &routev3.RouteConfiguration{} }, (*routev3.RouteConfiguration).GetName)
		if err != nil {
			c.ack(typeURL, nonce, version, err)
			return
		}
		s.mu.Lock()
		for _, n := range removed {
			delete(s.routes, n)
		}
		for n, m := range got {
			s.routes[n] = &xdsResource[*routev3.RouteConfiguration]{m, vers[n], now}
		}
		s.mu.Unlock()
		c.ack(typeURL, nonce, version, nil)
		s.checkInitialized()
	default:
		c.ack(typeURL, nonce, version, fmt.Errorf("unexpected type %s", typeURL))
	}
}

// updateNames sets the subscribed names of a non-wildcard type and sends the difference.
func (c *adsClient) updateNames(typeURL string, want map[string]bool) {
	c.subMu.Lock()
	sub := c.subs[typeURL]
	var add, del []string
	for n := range want {
		if !sub.names[n] {
			add = append(add, n)
		}
	}
	for n := range sub.names {
		if !want[n] {
			del = append(del, n)
		}
	}
	sub.names = want
	first := !sub.requested
	c.subMu.Unlock()
	if len(add) == 0 && len(del) == 0 {
		return
	}
	c.request(typeURL, first && !c.delta, add, del)
}

// maybeRequestLDS asks for listeners once clusters are initialised: after the first CDS response when no
// cluster needs EDS, otherwise after the first EDS response (Envoy's cluster warming), with a bounded wait.
func (c *adsClient) maybeRequestLDS(waitForEDS bool) {
	c.subMu.Lock()
	sub := c.subs[typeListener]
	if sub.requested {
		c.subMu.Unlock()
		return
	}
	if waitForEDS {
		if c.ldsTimer == nil {
			c.ldsTimer = time.AfterFunc(5*time.Second, func() { c.maybeRequestLDS(false) })
		}
		c.subMu.Unlock()
		return
	}
	if c.ldsTimer != nil {
		c.ldsTimer.Stop()
	}
	c.subMu.Unlock()
	c.request(typeListener, true, nil, nil)
}

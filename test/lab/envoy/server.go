package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Envoy's server states (envoy.admin.v3.ServerInfo.State; stat server.state).
const (
	stateLive            = 0
	stateDraining        = 1
	statePreInitializing = 2
	stateInitializing    = 3
)

var stateNames = map[int32]string{0: "LIVE", 1: "DRAINING", 2: "PRE_INITIALIZING", 3: "INITIALIZING"}

type xdsResource[T any] struct {
	msg         T
	version     string
	lastUpdated time.Time
}

type secretEntry struct {
	secret      *tlsv3.Secret
	version     string
	lastUpdated time.Time
}

type server struct {
	bs      *bootstrapv3.Bootstrap
	opts    *options
	argv    []string
	logger  *log.Logger
	stats   *statsStore
	clock   func() time.Time
	started time.Time
	state   atomic.Int32

	mu             sync.RWMutex
	staticClusters map[string]*clusterv3.Cluster
	clusters       map[string]*xdsResource[*clusterv3.Cluster]
	endpoints      map[string]*xdsResource[*endpointv3.ClusterLoadAssignment]
	listeners      map[string]*xdsResource[*listenerv3.Listener]
	routes         map[string]*xdsResource[*routev3.RouteConfiguration]
	secrets        map[string]*secretEntry
	versions       map[string]string // type URL -> last accepted version (SotW) / system version
	rrIndex        map[string]int

	// init tracking (Envoy's init manager: initial CDS, then LDS; listeners warm on RDS and SDS)
	cdsReceived, ldsReceived bool
	sdsWanted                map[string]bool
	rdsWanted                map[string]bool
	liveOnce                 sync.Once
	liveCh                   chan struct{}

	// originalDst reads SO_ORIGINAL_DST; tests replace it to stand in for iptables REDIRECT.
	originalDst func(net.Conn) (netip.AddrPort, error)

	listenerMgr *listenerManager
	sds         *sdsClient
	shutdown    context.CancelFunc
}

func newServer(bs *bootstrapv3.Bootstrap, opts *options, argv []string, logger *log.Logger) *server {
	s := &server{
		bs: bs, opts: opts, argv: argv, logger: logger, clock: time.Now,
		stats:          newStatsStore(newStatsMatcher(bs)),
		staticClusters: map[string]*clusterv3.Cluster{},
		clusters:       map[string]*xdsResource[*clusterv3.Cluster]{},
		endpoints:      map[string]*xdsResource[*endpointv3.ClusterLoadAssignment]{},
		listeners:      map[string]*xdsResource[*listenerv3.Listener]{},
		routes:         map[string]*xdsResource[*routev3.RouteConfiguration]{},
		secrets:        map[string]*secretEntry{},
		versions:       map[string]string{},
		rrIndex:        map[string]int{},
		sdsWanted:      map[string]bool{},
		rdsWanted:      map[string]bool{},
		liveCh:         make(chan struct{}),
	}
	s.started = s.clock()
	s.originalDst = originalDst
	s.state.Store(statePreInitializing)
	for _, c := range bs.GetStaticResources().GetClusters() {
		s.staticClusters[c.GetName()] = c
	}
	s.listenerMgr = newListenerManager(s)
	s.sds = newSDSClient(s)
	s.defineServerStats()
	return s
}

func (s *server) defineServerStats() {
	for _, n := range []string{"cluster_manager.cds.update_attempt", "cluster_manager.cds.update_success",
		"cluster_manager.cds.update_rejected", "cluster_manager.cds.update_failure",
		"listener_manager.lds.update_attempt", "listener_manager.lds.update_success",
		"listener_manager.lds.update_rejected", "listener_manager.lds.update_failure"} {
		s.stats.define(n, counterStat)
	}
	for _, c := range s.bs.GetStaticResources().GetClusters() {
		p := "cluster." + clusterStatName(c) + "."
		for _, n := range []string{"upstream_cx_total", "upstream_cx_connect_fail", "upstream_rq_total"} {
			s.stats.define(p+n, counterStat)
		}
		s.stats.define(p+"upstream_cx_active", gaugeStat)
		s.stats.define(p+"upstream_rq_active", gaugeStat)
	}
	s.stats.set("server.state", statePreInitializing)
	s.stats.set("server.live", 0)
	s.stats.set("server.concurrency", uint64(s.opts.concurrency))
	s.stats.set("server.total_connections", 0)
	s.stats.set("server.hot_restart_epoch", 0)
	s.stats.set("server.version", 0)
	s.stats.set("listener_manager.workers_started", 0)
	s.stats.set("control_plane.connected_state", 0)
}

// clusterStatName is Envoy's stat name for a cluster: alt_stat_name when set (Istio sets "<name>;").
func clusterStatName(c *clusterv3.Cluster) string {
	if c.GetAltStatName() != "" {
		return c.GetAltStatName()
	}
	return c.GetName()
}

func (s *server) setState(st int32) {
	s.state.Store(st)
	s.stats.set("server.state", uint64(st))
	if st == stateLive {
		s.stats.set("server.live", 1)
	} else {
		s.stats.set("server.live", 0)
	}
}

func (s *server) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	s.shutdown = cancel
	defer cancel()
	s.sds.bind(ctx)
	adminAddr := s.bs.GetAdmin().GetAddress().GetSocketAddress()
	if adminAddr == nil {
		return fmt.Errorf("bootstrap has no admin socket address")
	}
	adminLn, err := net.Listen("tcp", net.JoinHostPort(adminAddr.GetAddress(), fmt.Sprint(adminAddr.GetPortValue())))
	if err != nil {
		return fmt.Errorf("cannot bind admin address: %v", err)
	}
	go s.serveAdmin(ctx, adminLn)
	s.logf("info", "main", "admin address: %s", adminLn.Addr())
	s.setState(stateInitializing)

	// Static listeners are added at startup (Envoy binds them with the workers).
	for _, l := range s.bs.GetStaticResources().GetListeners() {
		if err := s.listenerMgr.addOrUpdate(l, false); err != nil {
			return fmt.Errorf("static listener %s: %v", l.GetName(), err)
		}
	}
	ads := s.bs.GetDynamicResources().GetAdsConfig()
	if ads != nil {
		client, err := newADSClient(s, ads)
		if err != nil {
			return err
		}
		go client.run(ctx)
	} else {
		s.mu.Lock()
		s.cdsReceived, s.ldsReceived = true, true
		s.mu.Unlock()
		s.checkInitialized()
	}
	<-ctx.Done()
	s.setState(stateDraining)
	s.listenerMgr.closeAll()
	_ = adminLn.Close()
	return nil
}

// checkInitialized moves the server to LIVE once the initial CDS and LDS arrived and every listener warmed
// (its RDS route configs and SDS secrets present), as Envoy's init manager does; workers start then.
func (s *server) checkInitialized() {
	s.mu.RLock()
	ready := s.cdsReceived && s.ldsReceived
	for n := range s.rdsWanted {
		if _, ok := s.routes[n]; !ok {
			ready = false
		}
	}
	for n := range s.sdsWanted {
		if _, ok := s.secrets[n]; !ok {
			ready = false
		}
	}
	s.mu.RUnlock()
	if !ready {
		return
	}
	s.liveOnce.Do(func() {
		s.listenerMgr.startWorkers()
		s.stats.set("listener_manager.workers_started", 1)
		s.stats.recordInitTime(float64(s.clock().Sub(s.started).Milliseconds()))
		s.setState(stateLive)
		close(s.liveCh)
		s.logf("info", "main", "all dependencies initialized. starting workers")
	})
}

// lookupCluster returns a static or dynamic cluster.
func (s *server) lookupCluster(name string) *clusterv3.Cluster {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c, ok := s.staticClusters[name]; ok {
		return c
	}
	if c, ok := s.clusters[name]; ok {
		return c.msg
	}
	return nil
}

func (s *server) lookupRoute(name string) *routev3.RouteConfiguration {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r, ok := s.routes[name]; ok {
		return r.msg
	}
	return nil
}

func (s *server) lookupSecret(name string) *tlsv3.Secret {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e, ok := s.secrets[name]; ok {
		return e.secret
	}
	return nil
}

// clusterLoadAssignment returns the endpoints of a cluster: inline load_assignment (STATIC, STRICT_DNS) or EDS.
func (s *server) clusterLoadAssignment(c *clusterv3.Cluster) *endpointv3.ClusterLoadAssignment {
	if c.GetType() == clusterv3.Cluster_EDS {
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = c.GetName()
		}
		s.mu.RLock()
		defer s.mu.RUnlock()
		if e, ok := s.endpoints[name]; ok {
			return e.msg
		}
		return nil
	}
	return c.GetLoadAssignment()
}

func edsName(c *clusterv3.Cluster) string {
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return c.GetName()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func socketAddrString(a *corev3.Address) string {
	if sa := a.GetSocketAddress(); sa != nil {
		return net.JoinHostPort(sa.GetAddress(), fmt.Sprint(sa.GetPortValue()))
	}
	if p := a.GetPipe(); p != nil {
		return p.GetPath()
	}
	return ""
}

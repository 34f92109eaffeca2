package main

// Bootstrap loading: the JSON file pilot-agent renders (envoy-rev.json, from
// tools/packaging/common/envoy_bootstrap.json) parsed into envoy.config.bootstrap.v3.Bootstrap, as Envoy does
// with -c. --config-yaml (pilot-agent's ISTIO_BOOTSTRAP_OVERRIDE) is merged on top (Envoy: proto MergeFrom).

import (
	"fmt"
	"os"
	"strings"
	"sync"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	// Typed configs that appear in Istio bootstraps and xDS resources, so /config_dump can render them.
	_ "github.com/cncf/xds/go/udpa/type/v1"
	_ "github.com/cncf/xds/go/xds/type/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/compression/brotli/compressor/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/compression/gzip/compressor/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/compression/zstd/compressor/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/compressor/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_stats/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	_ "istio.io/api/envoy/config/filter/http/alpn/v2alpha1"
	_ "istio.io/api/envoy/config/filter/network/metadata_exchange"
	_ "istio.io/api/envoy/extensions/stats"
)

// anyResolver resolves every Any type: registered types normally; others (Istio's own filter configs such as
// stats.PluginConfig or io.istio.* that go-control-plane does not carry) as an empty dynamic message, so a
// bootstrap or dump still parses/renders (their fields are dropped from /config_dump; the binary Any we
// received is kept unchanged for everything else).
type anyResolver struct {
	mu      sync.Mutex
	unknown map[protoreflect.FullName]protoreflect.MessageType
}

var resolver = &anyResolver{unknown: map[protoreflect.FullName]protoreflect.MessageType{}}

func (r *anyResolver) FindMessageByName(n protoreflect.FullName) (protoreflect.MessageType, error) {
	if t, err := protoregistry.GlobalTypes.FindMessageByName(n); err == nil {
		return t, nil
	}
	return r.placeholder(n)
}

func (r *anyResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if t, err := protoregistry.GlobalTypes.FindMessageByURL(url); err == nil {
		return t, nil
	}
	name := url
	if i := strings.LastIndex(url, "/"); i >= 0 {
		name = url[i+1:]
	}
	return r.placeholder(protoreflect.FullName(name))
}

func (r *anyResolver) FindExtensionByName(n protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByName(n)
}

func (r *anyResolver) FindExtensionByNumber(m protoreflect.FullName, f protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByNumber(m, f)
}

func (r *anyResolver) placeholder(n protoreflect.FullName) (protoreflect.MessageType, error) {
	if !n.IsValid() {
		return nil, fmt.Errorf("invalid type name %q", n)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.unknown[n]; ok {
		return t, nil
	}
	pkg, msg := string(n.Parent()), string(n.Name())
	fdp := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("placeholder/" + string(n) + ".proto"),
		Package:     proto.String(pkg),
		Syntax:      proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String(msg)}},
	}
	fd, err := protodesc.NewFile(fdp, new(protoregistry.Files))
	if err != nil {
		return nil, err
	}
	t := dynamicpb.NewMessageType(fd.Messages().Get(0))
	r.unknown[n] = t
	return t, nil
}

// loadBootstrap reads -c (JSON or YAML-as-JSON; pilot-agent writes JSON) and merges --config-yaml.
func loadBootstrap(path, overrideJSON string) (*bootstrapv3.Bootstrap, error) {
	bs := &bootstrapv3.Bootstrap{}
	opts := protojson.UnmarshalOptions{DiscardUnknown: true, Resolver: resolver}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("unable to read file: %s", path)
		}
		if err := opts.Unmarshal(raw, bs); err != nil {
			return nil, fmt.Errorf("unable to parse JSON as proto (%v): %s", err, path)
		}
	}
	if overrideJSON != "" {
		ov := &bootstrapv3.Bootstrap{}
		if err := opts.Unmarshal([]byte(overrideJSON), ov); err != nil {
			return nil, fmt.Errorf("unable to parse --config-yaml as proto: %v", err)
		}
		proto.Merge(bs, ov)
	}
	if path == "" && overrideJSON == "" {
		return nil, fmt.Errorf("At least one of --config-path or --config-yaml or Options::configProto() should be non-empty")
	}
	return bs, nil
}

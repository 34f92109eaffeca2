package main

import (
	"encoding/pem"

	"google.golang.org/protobuf/reflect/protoreflect"
	"regexp"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

type discoveryRequest = discoveryv3.DiscoveryRequest

func pemDecode(b []byte) ([]byte, []byte) {
	for {
		blk, rest := pem.Decode(b)
		if blk == nil {
			return nil, nil
		}
		if blk.Type == "CERTIFICATE" {
			return blk.Bytes, rest
		}
		b = rest
	}
}

var regexCache sync.Map

// fullRegexMatch is Envoy's safe_regex (RE2) semantics: the whole value must match.
func fullRegexMatch(expr, v string) bool {
	re, ok := regexCache.Load(expr)
	if !ok {
		c, err := regexp.Compile("^(?:" + expr + ")$")
		if err != nil {
			return false
		}
		re, _ = regexCache.LoadOrStore(expr, c)
	}
	return re.(*regexp.Regexp).MatchString(v)
}

type corev3CidrRange = corev3.CidrRange

func protoreflectName(s string) protoreflect.Name { return protoreflect.Name(s) }

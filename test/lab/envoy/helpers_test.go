package main

import (
	"bufio"
	"net"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

type typeInt32Range = typev3.Int32Range

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

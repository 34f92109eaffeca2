package main

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"
)

// Netfilter's SO_ORIGINAL_DST (linux/netfilter_ipv4.h: 80; IP6T_SO_ORIGINAL_DST is also 80 at SOL_IPV6):
// the address a connection was sent to before iptables REDIRECT (istio-iptables) rewrote it. Envoy's
// original_dst listener filter reads it the same way (source/common/network/utility.cc getOriginalDst).
const soOriginalDst = 80

func originalDst(c net.Conn) (netip.AddrPort, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("not a TCP connection")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	local := tc.LocalAddr().(*net.TCPAddr)
	var out netip.AddrPort
	var opErr error
	err = raw.Control(func(fd uintptr) {
		if local.IP.To4() != nil {
			var sa syscall.RawSockaddrInet4
			size := uint32(unsafe.Sizeof(sa))
			_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_IP, soOriginalDst, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&size)), 0)
			if e != 0 {
				opErr = e
				return
			}
			port := uint16(sa.Port>>8) | uint16(sa.Port<<8)
			out = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
			return
		}
		var sa syscall.RawSockaddrInet6
		size := uint32(unsafe.Sizeof(sa))
		_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_IPV6, soOriginalDst, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&size)), 0)
		if e != 0 {
			opErr = e
			return
		}
		port := uint16(sa.Port>>8) | uint16(sa.Port<<8)
		out = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	return out, opErr
}

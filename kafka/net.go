package kafka

import (
	"fmt"
	"net"
	"strconv"
)

// loopbackListen keeps kfake on 127.0.0.1: by default it binds every interface.
func loopbackListen(network, address string) (net.Listener, error) {
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("cannot parse listen address %q: %w", address, err)
	}
	return net.Listen(network, net.JoinHostPort("127.0.0.1", port))
}

func splitPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("cannot parse Kafka address %q: %w", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("cannot parse Kafka port %q: %w", p, err)
	}
	return h, n, nil
}

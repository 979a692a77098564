package client

import (
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	// Registers grpc-go's client-side health checker (grpc.health.v1
	// Watch), which healthCheckConfig in balancedServiceConfig turns on.
	// grpc-go offers no other way to install it than this import.
	_ "google.golang.org/grpc/health"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// balancedServiceConfig spreads calls over every address of the target
// (round_robin) and skips those whose grpc.health.v1 status for the whole
// server ("") is not SERVING, or whose connection is down. A service
// config supplied by the resolver (a DNS TXT record) replaces it.
const balancedServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`

// listScheme is the scheme of the resolver that hands a Client the
// addresses of a comma-separated target. It is installed on each Client's
// connection alone (grpc.WithResolvers), never registered globally.
const listScheme = "greeter-list"

// dialTarget returns what grpc.NewClient is given for target, as New
// documents: the target itself, or for a list the target of a resolver
// that holds its addresses; and the dial options that balance the calls
// when target names replicas.
func dialTarget(target string) (string, []grpc.DialOption, error) {
	target = strings.TrimSpace(target)
	if !strings.Contains(target, ",") {
		if strings.HasPrefix(target, "dns:") {
			return target, []grpc.DialOption{grpc.WithDefaultServiceConfig(balancedServiceConfig)}, nil
		}
		return target, nil, nil
	}
	var endpoints []resolver.Endpoint
	for addr := range strings.SplitSeq(target, ",") {
		addr = strings.TrimSpace(addr)
		if err := checkListAddress(addr); err != nil {
			return "", nil, fmt.Errorf("client: address list %q: %w", target, err)
		}
		endpoints = append(endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: addr}}})
	}
	// The resolver keeps the list and hands it again to a connection that
	// went idle and wakes up. grpc-go's examples/features/health builds a
	// fixed list the same way; its resolver APIs are all marked
	// experimental, and WithResolvers is the only one that needs no global
	// registration.
	r := manual.NewBuilderWithScheme(listScheme)
	r.InitialState(resolver.State{Endpoints: endpoints})
	// The first address is the target's authority: the name TLS verifies
	// on every replica unless Options.TLS.ServerName says otherwise.
	first := endpoints[0].Addresses[0].Addr
	return listScheme + ":///" + first, []grpc.DialOption{
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(balancedServiceConfig),
	}, nil
}

// checkListAddress reports why addr cannot be an element of an address
// list: each must be HOST:PORT, not empty and not a target with a scheme.
func checkListAddress(addr string) error {
	if addr == "" {
		return fmt.Errorf("empty address")
	}
	if strings.Contains(addr, "://") {
		return fmt.Errorf("%q: a list holds HOST:PORT addresses, not targets with a scheme", addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" || port == "" {
		return fmt.Errorf("%q: want HOST:PORT", addr)
	}
	return nil
}

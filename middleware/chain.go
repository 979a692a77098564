package middleware

import (
	"google.golang.org/grpc"
)

// Chain is an ordered list of plugins. The first plugin is the outermost: it
// runs first on the way in and last on the way out.
type Chain struct {
	plugins []Plugin
}

// NewChain returns a chain of plugins in the given order. The standard
// package builds the chain greeterd uses.
func NewChain(plugins ...Plugin) *Chain {
	return &Chain{plugins: append([]Plugin(nil), plugins...)}
}

// Names returns the plugin names in chain order.
func (c *Chain) Names() []string {
	names := make([]string, len(c.plugins))
	for i, p := range c.plugins {
		names[i] = p.Name
	}
	return names
}

// ServerOptions returns the options that install the chain on a server: one
// grpc.ChainUnaryInterceptor and one grpc.ChainStreamInterceptor in chain
// order, followed by every plugin's own ServerOptions. Pass them to
// grpc.NewServer before any other interceptor option, so that the chain's
// first plugin stays outermost.
func (c *Chain) ServerOptions() []grpc.ServerOption {
	var (
		unary  []grpc.UnaryServerInterceptor
		stream []grpc.StreamServerInterceptor
		extra  []grpc.ServerOption
	)
	for _, p := range c.plugins {
		if p.Unary != nil {
			unary = append(unary, p.Unary)
		}
		if p.Stream != nil {
			stream = append(stream, p.Stream)
		}
		extra = append(extra, p.ServerOptions...)
	}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	}
	return append(opts, extra...)
}

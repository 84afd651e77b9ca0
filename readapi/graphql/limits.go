package graphql

import (
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
)

// configure sets the transports, errors and limits of the endpoint.
func (s *Server) configure(h *handler.Server) {
	h.AddTransport(transport.GET{})
	h.AddTransport(transport.POST{})
	h.SetErrorPresenter(s.present)
	h.SetRecoverFunc(s.recover)
}

package local

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/ferryhq/ferry/console"
	"github.com/ferryhq/ferry/internal/local/apigw"
	"github.com/ferryhq/ferry/internal/local/resources"
)

// consoleServer serves the web console (package console) on l, with a
// config.json naming the local HTTP and WebSocket APIs.
func consoleServer(l net.Listener, cfg console.Config) func(context.Context) error {
	return func(ctx context.Context) error {
		srv := &http.Server{Handler: console.Handler(cfg), ReadHeaderTimeout: 10 * time.Second}
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(l) }()
		select {
		case <-ctx.Done():
			shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return srv.Shutdown(shut)
		case err := <-errc:
			return err
		}
	}
}

// corsOf is the template's CORS configuration for local/apigw, allowing
// besides its origins (infra/local/stack.json's ConsoleOrigin, the default
// --console) the console's actual origin, when ferry local serves it
// elsewhere (another port, or port 0 in tests).
func corsOf(c *resources.CORS, consoleOrigin string) *apigw.CORS {
	if c == nil {
		return nil
	}
	out := &apigw.CORS{
		AllowOrigins: c.AllowOrigins, AllowHeaders: c.AllowHeaders, AllowMethods: c.AllowMethods,
		ExposeHeaders: c.ExposeHeaders, MaxAge: c.MaxAge, AllowCredentials: c.AllowCredentials,
	}
	if consoleOrigin != "" {
		out.AllowOrigins = append(append([]string(nil), c.AllowOrigins...), consoleOrigin)
	}
	return out
}

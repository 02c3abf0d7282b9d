package app

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	asideotel "github.com/aside-go/aside/otel"
)

// Metrics is the /metrics handler and the recorder that feeds it: aside's
// counters through OpenTelemetry, exported as Prometheus text from a registry
// of the service's own.
type Metrics struct {
	Handler  http.Handler
	Recorder *asideotel.Recorder
	provider *sdkmetric.MeterProvider
}

// NewMetrics builds the OpenTelemetry Prometheus exporter on a new registry,
// a MeterProvider reading it, and an asideotel recorder on that provider.
func NewMetrics() (*Metrics, error) {
	reg := prometheus.NewRegistry()
	exp, err := promexporter.New(promexporter.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	rec, err := asideotel.New(asideotel.WithMeterProvider(mp))
	if err != nil {
		return nil, err
	}
	return &Metrics{
		Handler:  promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Recorder: rec,
		provider: mp,
	}, nil
}

// Close stops the recorder and the provider.
func (m *Metrics) Close() error {
	_ = m.Recorder.Close()
	return m.provider.Shutdown(context.Background())
}

// Package metrics is a tiny port for publishing service metrics (queue depth,
// fleet size, latency), with a CloudWatch adapter and a structured-log one.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// Unit is a CloudWatch unit name.
type Unit string

const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
	Seconds      Unit = "Seconds"
	Bytes        Unit = "Bytes"
	None         Unit = "None"
)

// Datum is one sample.
type Datum struct {
	Name       string
	Value      float64
	Unit       Unit
	Dimensions map[string]string
	// Time defaults to now.
	Time time.Time
}

// Publisher is the port.
type Publisher interface {
	Publish(ctx context.Context, data ...Datum) error
}

// PutMetricData's limits.
const (
	maxPerCall   = 1000
	maxDimension = 30
)

// CloudWatch publishes to one namespace with PutMetricData.
type CloudWatch struct {
	client    *cloudwatch.Client
	namespace string
}

var _ Publisher = (*CloudWatch)(nil)

// NewCloudWatch returns a publisher into namespace (e.g. "facefleet").
func NewCloudWatch(client *cloudwatch.Client, namespace string) (*CloudWatch, error) {
	if client == nil {
		return nil, errors.New("metrics: nil CloudWatch client")
	}
	if namespace == "" {
		return nil, errors.New("metrics: empty CloudWatch namespace")
	}
	return &CloudWatch{client: client, namespace: namespace}, nil
}

// Publish sends data in batches of PutMetricData's maximum. Every datum is
// checked before the first call, so a bad one publishes nothing rather than the
// batches before it.
func (c *CloudWatch) Publish(ctx context.Context, data ...Datum) error {
	all := make([]types.MetricDatum, 0, len(data))
	for _, d := range data {
		md, err := toDatum(d)
		if err != nil {
			return err
		}
		all = append(all, md)
	}
	for start := 0; start < len(all); start += maxPerCall {
		batch := all[start:min(start+maxPerCall, len(all))]
		if _, err := c.client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{
			Namespace: aws.String(c.namespace), MetricData: batch,
		}); err != nil {
			return fmt.Errorf("metrics: put %d data into CloudWatch namespace %s: %w", len(batch), c.namespace, err)
		}
	}
	return nil
}

func toDatum(d Datum) (types.MetricDatum, error) {
	if d.Name == "" {
		return types.MetricDatum{}, errors.New("metrics: datum without a name")
	}
	if len(d.Dimensions) > maxDimension {
		return types.MetricDatum{}, fmt.Errorf("metrics: %s has %d dimensions, CloudWatch allows %d", d.Name, len(d.Dimensions), maxDimension)
	}
	t := d.Time
	if t.IsZero() {
		t = time.Now()
	}
	u := d.Unit
	if u == "" {
		u = None
	}
	md := types.MetricDatum{
		MetricName: aws.String(d.Name),
		Value:      aws.Float64(d.Value),
		Unit:       types.StandardUnit(u),
		Timestamp:  aws.Time(t),
	}
	keys := make([]string, 0, len(d.Dimensions))
	for k := range d.Dimensions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		md.Dimensions = append(md.Dimensions, types.Dimension{Name: aws.String(k), Value: aws.String(d.Dimensions[k])})
	}
	return md, nil
}

// Log writes each datum as a structured log line; the default when no CloudWatch
// is configured.
type Log struct{ Logger *slog.Logger }

// Publish logs data.
func (l Log) Publish(ctx context.Context, data ...Datum) error {
	lg := l.Logger
	if lg == nil {
		lg = slog.Default()
	}
	for _, d := range data {
		lg.LogAttrs(ctx, slog.LevelInfo, "metric", slog.String("name", d.Name), slog.Float64("value", d.Value), slog.String("unit", string(d.Unit)), slog.Any("dimensions", d.Dimensions))
	}
	return nil
}

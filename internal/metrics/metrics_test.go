package metrics_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"github.com/facefleet/facefleet/internal/metrics"
	"github.com/facefleet/facefleet/internal/metrics/cloudwatchtest"
)

func TestCloudWatchPublish(t *testing.T) {
	fake := cloudwatchtest.New(t)
	client := cloudwatch.New(cloudwatch.Options{Region: "us-east-1", BaseEndpoint: aws.String(fake.URL), Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1})
	p, err := metrics.NewCloudWatch(client, "facefleet-test")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]metrics.Datum, 1001)
	for i := range data {
		data[i] = metrics.Datum{Name: "QueueDepth", Value: float64(i), Unit: metrics.Count, Dimensions: map[string]string{"Queue": "requests"}}
	}
	data[1000].Name = "Instances"
	if err := p.Publish(context.Background(), data...); err != nil {
		t.Fatal(err)
	}
	puts := fake.Puts()
	if len(puts) != 2 || len(puts[0].Data) != 1000 || len(puts[1].Data) != 1 || puts[1].Data[0].Name != "Instances" || puts[0].Data[999].Value != 999 {
		t.Fatalf("calls carried %d batches; want 1000 + 1 (PutMetricData's limit)", len(puts))
	}
	if puts[0].Namespace != "facefleet-test" || len(fake.Bad()) != 0 {
		t.Fatalf("namespace %q, refused %v", puts[0].Namespace, fake.Bad())
	}
	if err := p.Publish(context.Background(), metrics.Datum{Value: 1}); err == nil {
		t.Fatal("a datum without a name was published")
	}
	// A bad datum past the first batch publishes nothing, not a partial set.
	data[1000].Name = ""
	calls := len(fake.Puts())
	if err := p.Publish(context.Background(), data...); err == nil || len(fake.Puts()) != calls {
		t.Fatalf("Publish with a bad 1001st datum = %v after %d call(s); want an error and no call", err, len(fake.Puts())-calls)
	}
	if _, err := metrics.NewCloudWatch(client, ""); err == nil {
		t.Fatal("empty namespace accepted")
	}
}

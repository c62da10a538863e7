// Package awsconfig loads the AWS SDK configuration shared by the AWS adapters and
// builds their clients, with per-service endpoint overrides so the same binaries run
// against AWS or a loopback emulator (fauxqs for SQS and S3, a fake EC2 in tests).
//
// Endpoints resolve, highest first: the per-service option (flag), Options.Endpoint,
// then the SDK's own environment (AWS_ENDPOINT_URL_SQS, _S3, _EC2, _CLOUDWATCH, _LAMBDA, and
// AWS_ENDPOINT_URL), then AWS's regional endpoints.
package awsconfig

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/facefleet/facefleet/internal/settings"
)

// Options select the region, endpoints and credentials. The zero value uses the
// SDK's defaults (environment, shared config, instance role).
type Options struct {
	// Region overrides AWS_REGION / the shared config.
	Region string
	// Endpoint is a base URL for every service (e.g. http://127.0.0.1:4566).
	Endpoint string
	// Per-service endpoints override Endpoint.
	SQSEndpoint, S3Endpoint, EC2Endpoint, CloudWatchEndpoint, LambdaEndpoint string
	// S3PathStyle addresses buckets as http://host/bucket/key, which emulators on
	// 127.0.0.1 need (virtual-hosted style would resolve bucket.127.0.0.1).
	S3PathStyle bool
	// AccessKeyID and SecretAccessKey, when both set, replace the credential chain
	// (emulators accept any key; without them the chain might query the instance
	// metadata service).
	AccessKeyID, SecretAccessKey string
	// MaxAttempts overrides the SDK retryer's attempts (0 keeps the default, 3).
	MaxAttempts int
}

// FromSettings takes the options from a command's resolved settings (flags and
// environment, declared in internal/settings).
func FromSettings(v *settings.Values) Options {
	o := Options{
		Region: v.String(settings.AWSRegion), Endpoint: v.String(settings.AWSEndpoint),
		SQSEndpoint: v.String(settings.SQSEndpoint), S3Endpoint: v.String(settings.S3Endpoint),
		EC2Endpoint: v.String(settings.EC2Endpoint), CloudWatchEndpoint: v.String(settings.CloudWatchEndpoint),
		S3PathStyle: v.Bool(settings.S3PathStyle), MaxAttempts: v.Int(settings.AWSMaxAttempts),
	}
	if v.Has(settings.LambdaEndpoint) { // the web tier's only
		o.LambdaEndpoint = v.String(settings.LambdaEndpoint)
	}
	return o
}

// Clients holds the loaded configuration and builds service clients from it.
type Clients struct {
	Config aws.Config
	opts   Options
}

// Load resolves the configuration. It fails on a malformed endpoint URL or a region
// that is missing everywhere, so a misconfigured tier stops at start-up rather than
// at its first request.
func Load(ctx context.Context, opts Options) (*Clients, error) {
	// A slice, not a map: with several bad endpoints the error names the same one
	// every run.
	for _, e := range []struct{ name, url string }{
		{"endpoint", opts.Endpoint}, {"sqs endpoint", opts.SQSEndpoint}, {"s3 endpoint", opts.S3Endpoint},
		{"ec2 endpoint", opts.EC2Endpoint}, {"cloudwatch endpoint", opts.CloudWatchEndpoint},
		{"lambda endpoint", opts.LambdaEndpoint},
	} {
		if e.url == "" {
			continue
		}
		if u, err := url.Parse(e.url); err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("awsconfig: %s %q is not an absolute URL like http://127.0.0.1:4566", e.name, e.url)
		}
	}
	var lo []func(*config.LoadOptions) error
	if opts.Region != "" {
		lo = append(lo, config.WithRegion(opts.Region))
	}
	if opts.AccessKeyID != "" && opts.SecretAccessKey != "" {
		lo = append(lo, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKeyID, opts.SecretAccessKey, "")))
	}
	if opts.MaxAttempts > 0 {
		lo = append(lo, config.WithRetryMaxAttempts(opts.MaxAttempts))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("awsconfig: load SDK config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("awsconfig: no AWS region: set -aws-region or AWS_REGION")
	}
	// Wrapped after loading, so the loader's own settings (a CA bundle) stay.
	cfg.HTTPClient = wrapHTTPClient(cfg.HTTPClient)
	return &Clients{Config: cfg, opts: opts}, nil
}

// endpoint picks the per-service override, then the shared one; "" leaves the
// SDK's resolution (which reads AWS_ENDPOINT_URL_<SERVICE> and AWS_ENDPOINT_URL).
func (c *Clients) endpoint(service string) *string {
	if service != "" {
		return aws.String(service)
	}
	if c.opts.Endpoint != "" {
		return aws.String(c.opts.Endpoint)
	}
	return nil
}

// SQS returns an SQS client.
func (c *Clients) SQS() *sqs.Client {
	ep := c.endpoint(c.opts.SQSEndpoint)
	return sqs.NewFromConfig(c.Config, func(o *sqs.Options) {
		if ep != nil {
			o.BaseEndpoint = ep
		}
	})
}

// S3 returns an S3 client (path-style when Options.S3PathStyle).
func (c *Clients) S3() *s3.Client {
	ep := c.endpoint(c.opts.S3Endpoint)
	return s3.NewFromConfig(c.Config, func(o *s3.Options) {
		if ep != nil {
			o.BaseEndpoint = ep
		}
		o.UsePathStyle = c.opts.S3PathStyle
	})
}

// EC2 returns an EC2 client.
func (c *Clients) EC2() *ec2.Client {
	ep := c.endpoint(c.opts.EC2Endpoint)
	return ec2.NewFromConfig(c.Config, func(o *ec2.Options) {
		if ep != nil {
			o.BaseEndpoint = ep
		}
	})
}

// CloudWatch returns a CloudWatch client.
func (c *Clients) CloudWatch() *cloudwatch.Client {
	ep := c.endpoint(c.opts.CloudWatchEndpoint)
	return cloudwatch.NewFromConfig(c.Config, func(o *cloudwatch.Options) {
		if ep != nil {
			o.BaseEndpoint = ep
		}
	})
}

// Lambda returns a Lambda client (the web tier invokes the scaler with it).
func (c *Clients) Lambda() *lambda.Client {
	ep := c.endpoint(c.opts.LambdaEndpoint)
	return lambda.NewFromConfig(c.Config, func(o *lambda.Options) {
		if ep != nil {
			o.BaseEndpoint = ep
		}
	})
}

package awsconfig

import (
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// NewHTTPClient is the SDK's default HTTP client with a fix for a race in
// smithy-go v1.28.9: its client handler closes the request body as soon as the
// response headers arrive, and the closed body's WriteTo returns io.EOF. When the
// server answers before net/http has finished checking the body for trailing
// bytes (a fast server, e.g. on loopback), net/http takes that io.EOF as a body
// error and closes the connection under the response being read: "use of closed
// network connection" half-way through a large DescribeInstances or GetObject.
// Hiding WriteTo makes net/http read the body with Read, whose EOF it handles.
func NewHTTPClient() aws.HTTPClient { return wrapHTTPClient(awshttp.NewBuildableClient()) }

func wrapHTTPClient(c aws.HTTPClient) aws.HTTPClient {
	if c == nil {
		c = awshttp.NewBuildableClient()
	}
	if _, ok := c.(readBodyClient); ok {
		return c
	}
	return readBodyClient{c}
}

type readBodyClient struct{ next aws.HTTPClient }

func (c readBodyClient) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = readOnlyBody{r.Body}
	}
	return c.next.Do(r)
}

// readOnlyBody exposes only Read and Close.
type readOnlyBody struct{ rc io.ReadCloser }

func (b readOnlyBody) Read(p []byte) (int, error) { return b.rc.Read(p) }
func (b readOnlyBody) Close() error               { return b.rc.Close() }

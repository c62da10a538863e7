package awstest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/facefleet/facefleet/internal/awsconfig"
)

// MotoAccount is moto's default account id.
const MotoAccount = "123456789012"

// Creds are an IAM user's access key.
type Creds struct {
	User                         string
	AccessKeyID, SecretAccessKey string
}

// Moto is a running moto_server (moto 5.2.1: SQS, S3, EC2, CloudWatch, IAM on one
// endpoint) with IAM access control ON: every request is checked against the
// calling user's identity policies. Set-up goes through Admin, a user allowed
// everything; the tiers get users whose policies are template.yaml's own (see
// TierUser). docs/emulators.md lists what moto does not model.
type Moto struct {
	// Endpoint is the rig's front (see queryFix) on 127.0.0.1; direct is
	// moto_server itself.
	Endpoint string
	direct   string
	front    *httptest.Server
	Admin    Creds
	proc     *process
	tmpl     *Template
	keysMu   sync.Mutex
	keys     map[string]string // access key id -> secret, of users the rig created
	// unavailable says why moto could not start (tests skip with it).
	unavailable string
}

// StartMoto launches moto_server on a free 127.0.0.1 port, creates the admin
// user while authentication is still off, switches access control on
// (POST /moto-api/reset-auth with body 0) and proves it is on: a user with no
// policy must be refused sqs:SendMessage.
func StartMoto(ctx context.Context) (*Moto, error) {
	tmpl, err := LoadTemplate("")
	if err != nil {
		return nil, err
	}
	p, direct, err := launchMoto(ctx)
	if err != nil {
		return nil, err
	}
	m := &Moto{direct: direct, proc: p, tmpl: tmpl, keys: map[string]string{}}
	m.front = m.queryFix(direct)
	m.Endpoint = m.front.URL
	if err := m.enforce(ctx); err != nil {
		m.Stop()
		return nil, err
	}
	return m, nil
}

// StartMotoOpen launches moto_server with access control off and no front
// (Endpoint is moto itself), for clients that sign with any key, such as the
// AWS CLI in `make teardown-check`. Stop it with Stop.
func StartMotoOpen(ctx context.Context) (*Moto, error) {
	p, direct, err := launchMoto(ctx)
	if err != nil {
		return nil, err
	}
	return &Moto{Endpoint: direct, direct: direct, proc: p}, nil
}

func launchMoto(ctx context.Context) (*process, string, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, "", fmt.Errorf("awstest: moto_server not on PATH (pip install 'moto[server]==5.2.1'): %w", err)
	}
	return launch(ctx, "moto_server", func(port int) *exec.Cmd {
		cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
		// Calls run unauthenticated until reset-auth (StartMoto's enforce).
		// AWS managed policies (AmazonSSMManagedInstanceCore on both roles) exist
		// only when moto loads them.
		cmd.Env = append(os.Environ(), "INITIAL_NO_AUTH_ACTION_COUNT=1000000000", "MOTO_ALLOW_NONEXISTENT_REGION=false", "MOTO_IAM_LOAD_MANAGED_POLICIES=true")
		return cmd
	}, "/moto-api/data.json")
}

// StartMotoForTest starts a moto of the test's own (IAM enforced), stopped
// when the test ends. It skips under -short or when moto cannot start (fails
// under FACEFLEET_REQUIRE_DEPS=1).
func StartMotoForTest(t testing.TB) *Moto {
	t.Helper()
	return forTest(t, "moto_server", StartMoto, (*Moto).Stop)
}

// queryFix is a reverse proxy in front of moto for its SigV4 deviation: moto
// 5.2.1 checks a signature over the query as its web server decoded it, so a
// query value holding "/" (ListObjectsV2 prefix=a/, sent and signed as a%2F,
// as SigV4 requires) always fails with SignatureDoesNotMatch, from any SDK. For
// such a request the proxy first checks the client's signature itself by the
// SigV4 rules (a wrong one is refused here, as AWS would), then re-signs the
// request the way moto computes it ("/" left raw) with the same key. Every
// other request passes through untouched and is checked by moto.
func (m *Moto) queryFix(target string) *httptest.Server {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, "%2F") && r.Header.Get("Authorization") != "" {
			if err := m.resign(r); err != nil {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>%s (awstest front)</Message></Error>", html.EscapeString(err.Error()))
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
}

var authRe = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/([^/]+)/([^/]+)/([^/]+)/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]+)$`)

// resign checks r's SigV4 signature and re-signs it for moto's canonical query.
func (m *Moto) resign(r *http.Request) error {
	a := authRe.FindStringSubmatch(r.Header.Get("Authorization"))
	if a == nil {
		return errors.New("malformed Authorization header")
	}
	akid, date, region, service, signed, sig := a[1], a[2], a[3], a[4], a[5], a[6]
	m.keysMu.Lock()
	secret, ok := m.keys[akid]
	m.keysMu.Unlock()
	if !ok {
		return fmt.Errorf("access key %s is not one the rig created", akid)
	}
	want := sigv4(r, signed, secret, date, region, service, false)
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return errors.New("the request signature does not match")
	}
	r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "Signature="+sig,
		"Signature="+sigv4(r, signed, secret, date, region, service, true), 1))
	r.URL.RawQuery = strings.ReplaceAll(r.URL.RawQuery, "%2F", "/")
	return nil
}

// sigv4 computes a request's SigV4 signature; rawSlash leaves "/" unencoded in
// the canonical query, as moto does.
func sigv4(r *http.Request, signed, secret, date, region, service string, rawSlash bool) string {
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	enc := func(s string) string {
		e := strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
		e = strings.ReplaceAll(e, "%7E", "~")
		if rawSlash {
			e = strings.ReplaceAll(e, "%2F", "/")
		}
		return e
	}
	var qs []string
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			qs = append(qs, enc(k)+"="+enc(v))
		}
	}
	var hdrs strings.Builder
	for _, h := range strings.Split(signed, ";") {
		v := r.Header.Get(h)
		if h == "host" {
			v = r.Host
		}
		hdrs.WriteString(h + ":" + strings.Join(strings.Fields(v), " ") + "\n")
	}
	canonical := strings.Join([]string{r.Method, r.URL.EscapedPath(), strings.Join(qs, "&"), hdrs.String(), signed,
		r.Header.Get("X-Amz-Content-Sha256")}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	scope := date + "/" + region + "/" + service + "/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + r.Header.Get("X-Amz-Date") + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	mac := func(key []byte, s string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	k := mac([]byte("AWS4"+secret), date)
	k = mac(k, region)
	k = mac(k, service)
	k = mac(k, "aws4_request")
	return hex.EncodeToString(mac(k, toSign))
}

// enforce creates the admin, turns access control on and proves it.
func (m *Moto) enforce(ctx context.Context) error {
	c, err := m.clients(ctx, Creds{AccessKeyID: AccessKey, SecretAccessKey: SecretKey})
	if err != nil {
		return err
	}
	m.Admin, err = m.createUser(ctx, m.iam(c), "rig-admin", []Policy{{Name: "everything",
		Document: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`}}, nil)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.direct+"/moto-api/reset-auth", strings.NewReader("0"))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain") // a form body would be consumed by Flask
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("awstest: moto reset-auth: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("awstest: moto reset-auth answered %s", resp.Status)
	}
	return m.ProveEnforced(ctx)
}

// ProveEnforced checks that access control is on: a user without any policy is
// refused sqs:SendMessage (AccessDenied), while the admin may send.
func (m *Moto) ProveEnforced(ctx context.Context) error {
	admin, err := m.clients(ctx, m.Admin)
	if err != nil {
		return err
	}
	q, err := CreateQueue(ctx, admin.SQS(), QueueSpec{Name: "rig-iam-probe-" + strconv.FormatInt(time.Now().UnixNano(), 36)})
	if err != nil {
		return fmt.Errorf("awstest: the rig's admin cannot create a queue under IAM: %w", err)
	}
	nobody, err := m.createUser(ctx, m.iam(admin), "rig-nobody-"+strconv.FormatInt(time.Now().UnixNano(), 36), nil, nil)
	if err != nil {
		return err
	}
	nc, err := m.clients(ctx, nobody)
	if err != nil {
		return err
	}
	_, err = nc.SQS().SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q.URL), MessageBody: aws.String("must be refused")})
	if !IsAccessDenied(err) {
		return fmt.Errorf("awstest: IAM is NOT enforced by moto: a user without policies sent a message (err %v)", err)
	}
	if _, err := admin.SQS().SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q.URL), MessageBody: aws.String("ok")}); err != nil {
		return fmt.Errorf("awstest: the rig's admin cannot send under IAM: %w", err)
	}
	_, _ = admin.SQS().DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(q.URL)})
	return nil
}

// IsAccessDenied reports an IAM refusal (AccessDenied, AccessDeniedException).
// moto answers an IAM refusal of a JSON-protocol call (SQS) with an XML body the
// SDK cannot decode, so a bare HTTP 403 counts too.
func IsAccessDenied(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden {
		return true
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation":
		return true
	}
	return false
}

func (m *Moto) iam(c *awsconfig.Clients) *iam.Client {
	return iam.NewFromConfig(c.Config, func(o *iam.Options) { o.BaseEndpoint = aws.String(m.Endpoint) })
}

func (m *Moto) createUser(ctx context.Context, c *iam.Client, name string, pols []Policy, managed []string) (Creds, error) {
	if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name)}); err != nil {
		return Creds{}, fmt.Errorf("awstest: create IAM user %s: %w", name, err)
	}
	for _, p := range pols {
		if _, err := c.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String(name), PolicyName: aws.String(p.Name), PolicyDocument: aws.String(p.Document)}); err != nil {
			return Creds{}, fmt.Errorf("awstest: put policy %s on %s: %w", p.Name, name, err)
		}
	}
	for _, arn := range managed {
		if _, err := c.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String(name), PolicyArn: aws.String(arn)}); err != nil {
			return Creds{}, fmt.Errorf("awstest: attach %s to %s: %w", arn, name, err)
		}
	}
	out, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
	if err != nil {
		return Creds{}, fmt.Errorf("awstest: create access key for %s: %w", name, err)
	}
	cr := Creds{User: name, AccessKeyID: aws.ToString(out.AccessKey.AccessKeyId), SecretAccessKey: aws.ToString(out.AccessKey.SecretAccessKey)}
	m.keysMu.Lock()
	m.keys[cr.AccessKeyID] = cr.SecretAccessKey
	m.keysMu.Unlock()
	return cr, nil
}

// NewStack returns a Stack named name (lower case, unique per test) on this
// server, for TierUser and the resources a test creates.
func (m *Moto) NewStack(name string) *Stack {
	return &Stack{Name: name, Region: Region, Account: MotoAccount, Endpoint: m.Endpoint, Partition: "aws",
		Params: map[string]string{}, Refs: map[string]string{}, Attrs: map[string]string{}}
}

// TierUser creates an IAM user for tier ("web", "app", "scaler") whose policies
// are the template's own policies for that tier, read from template.yaml now and
// resolved against stack, adjusted only for moto's documented deviations
// (MotoAdjust). It returns the user's access key.
func (m *Moto) TierUser(ctx context.Context, tier string, stack *Stack) (Creds, error) {
	pols, managed, err := m.tmpl.TierPolicies(tier, stack)
	if err != nil {
		return Creds{}, err
	}
	for i := range pols {
		if pols[i].Document, err = MotoAdjust(pols[i].Document); err != nil {
			return Creds{}, err
		}
	}
	admin, err := m.clients(ctx, m.Admin)
	if err != nil {
		return Creds{}, err
	}
	return m.createUser(ctx, m.iam(admin), stack.Name+"-"+tier, pols, managed)
}

// UserWith creates an IAM user whose only policy is doc (taken as written, no
// MotoAdjust), for tests that probe what moto itself authorises.
func (m *Moto) UserWith(ctx context.Context, name, doc string) (Creds, error) {
	admin, err := m.clients(ctx, m.Admin)
	if err != nil {
		return Creds{}, err
	}
	return m.createUser(ctx, m.iam(admin), name, []Policy{{Name: name, Document: doc}}, nil)
}

// MotoAdjust rewrites a policy for moto 5.2.1's deviations from IAM, each one
// documented in docs/emulators.md:
//
//   - moto authorises HeadBucket as the non-IAM action s3:HeadBucket, where AWS
//     checks s3:ListBucket: every statement granting s3:ListBucket also names
//     s3:HeadBucket (no wider than AWS).
//   - moto authorises every EC2 action against the resource "*", never against
//     the instance, volume or launch template ARN, so a statement scoped to ARNs
//     never matches: statements whose actions are all ec2:* get Resource "*".
//     This is wider than AWS; the ARN scoping (and the tag conditions, which
//     moto ignores) are checked statically by the template tests instead.
func MotoAdjust(doc string) (string, error) {
	var d map[string]any
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		return "", fmt.Errorf("awstest: policy is not JSON: %w", err)
	}
	stmts, _ := d["Statement"].([]any)
	for _, s := range stmts {
		st, _ := s.(map[string]any)
		var acts []any
		switch a := st["Action"].(type) {
		case string:
			acts = []any{a}
		case []any:
			acts = a
		}
		allEC2 := len(acts) > 0
		for _, a := range acts {
			as, _ := a.(string)
			allEC2 = allEC2 && strings.HasPrefix(as, "ec2:")
			if as == "s3:ListBucket" {
				st["Action"] = append(acts, "s3:HeadBucket")
			}
		}
		if allEC2 {
			st["Resource"] = "*"
		}
	}
	b, err := json.Marshal(d)
	return string(b), err
}

// clients are SDK clients on this server with creds.
func (m *Moto) clients(ctx context.Context, c Creds) (*awsconfig.Clients, error) {
	return awsconfig.Load(ctx, m.OptionsFor(c))
}

// OptionsFor returns awsconfig options that address moto as the user c.
func (m *Moto) OptionsFor(c Creds) awsconfig.Options {
	return awsconfig.Options{Region: Region, Endpoint: m.Endpoint, S3PathStyle: true,
		AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey}
}

// ClientsFor loads SDK clients on this server as the user c.
func (m *Moto) ClientsFor(ctx context.Context, c Creds) (*awsconfig.Clients, error) {
	return m.clients(ctx, c)
}

// EnvFor is the environment a child process needs to reach moto as the user c.
func (m *Moto) EnvFor(c Creds) []string {
	return []string{
		"AWS_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=" + c.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + c.SecretAccessKey,
		"AWS_ENDPOINT_URL=" + m.Endpoint,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Stop terminates moto_server (SIGTERM to its process group, then SIGKILL).
func (m *Moto) Stop() {
	if m == nil {
		return
	}
	if m.front != nil {
		m.front.Close()
	}
	m.proc.stop()
}

// Logs returns moto's recent output.
func (m *Moto) Logs() string {
	if m == nil {
		return ""
	}
	return m.proc.logText()
}

// MotoMain starts moto for a test package, runs its tests and stops it (as Main
// does for fauxqs). Under -short nothing is started and tests that call
// NeedMoto skip. When moto cannot start, they skip too, or the package fails
// under FACEFLEET_REQUIRE_DEPS=1.
func MotoMain(m *testing.M, dst **Moto) int {
	stop, ok := setUpMoto(dst)
	if !ok {
		return 1
	}
	defer stop()
	return m.Run()
}

// Both starts fauxqs and moto for a package whose tests use both.
func Both(m *testing.M, faux **Server, moto **Moto) int {
	stopM, ok := setUpMoto(moto)
	if !ok {
		return 1
	}
	defer stopM()
	stopF, ok := setUpFauxqs(faux)
	if !ok {
		return 1
	}
	defer stopF()
	return m.Run()
}

func setUpMoto(dst **Moto) (stop func(), ok bool) {
	m := &Moto{}
	m.unavailable, ok = forPackage("moto", func(ctx context.Context) error {
		started, err := StartMoto(ctx)
		if err == nil {
			m = started
		}
		return err
	})
	*dst = m
	return m.Stop, ok
}

// NeedMoto returns m, or skips the test when moto is not running (under
// -short, or when it could not start).
func NeedMoto(t testing.TB, m *Moto) *Moto {
	t.Helper()
	var why string
	if m != nil {
		why = m.unavailable
	}
	need(t, "moto", m != nil, why)
	return m
}

// DataPlane is a stack's queues as CreateDataPlane made them.
type DataPlane struct{ Requests, Responses Queue }

// CreateDataPlane creates st's queues and buckets as template.yaml declares
// them, through admin: the request queue (30 s visibility) and the response
// queue, each redriving to a dead-letter queue after 3 receives, and the input
// and output buckets. The buckets get no bucket policies: moto applies them,
// and the template's deny of plain HTTP (aws:SecureTransport) would refuse
// every call on loopback. The queues' URLs and ARNs are recorded in st, so the
// template's policies resolve to them.
func CreateDataPlane(ctx context.Context, admin *awsconfig.Clients, st *Stack) (DataPlane, error) {
	var d DataPlane
	var err error
	if d.Requests, err = CreateQueue(ctx, admin.SQS(), QueueSpec{Name: st.QueueName("RequestQueue"), VisibilityTimeout: 30 * time.Second, MaxReceives: 3}); err != nil {
		return d, err
	}
	if d.Responses, err = CreateQueue(ctx, admin.SQS(), QueueSpec{Name: st.QueueName("ResponseQueue"), MaxReceives: 3}); err != nil {
		return d, err
	}
	for logical, q := range map[string]Queue{"Request": d.Requests, "Response": d.Responses} {
		st.Refs[logical+"Queue"], st.Attrs[logical+"Queue.Arn"] = q.URL, q.ARN
		st.Refs[logical+"DLQ"], st.Attrs[logical+"DLQ.Arn"] = q.DLQURL, q.DLQARN
	}
	for _, b := range []string{st.BucketName("InputBucket"), st.BucketName("OutputBucket")} {
		if err := CreateBucket(ctx, admin.S3(), b); err != nil {
			return d, err
		}
	}
	return d, nil
}

package awstest

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// invokePath is the Invoke API's path (Lambda REST API 2015-03-31).
var invokePath = regexp.MustCompile(`^/2015-03-31/functions/([^/]+)/invocations$`)

// LambdaInvokeResource is the resource IAM authorises an Invoke request against, as
// Lambda derives it from the request: the FunctionName path element (a name,
// name:qualifier, a partial ARN account:function:name[:qualifier] or a full
// ARN) made a full ARN in the caller's region and account, qualified when the
// request names a version or alias (in FunctionName or the Qualifier query).
func LambdaInvokeResource(escapedPath, rawQuery, region, account string) (string, error) {
	m := invokePath.FindStringSubmatch(escapedPath)
	if m == nil {
		return "", fmt.Errorf("path %q is not an Invoke", escapedPath)
	}
	fn, err := url.PathUnescape(m[1])
	if err != nil {
		return "", err
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", err
	}
	var name, qual string
	p := strings.Split(fn, ":")
	switch {
	case len(p) >= 7 && len(p) <= 8 && p[0] == "arn" && p[2] == "lambda" && p[5] == "function":
		region, account, name = p[3], p[4], p[6]
		if len(p) == 8 {
			qual = p[7]
		}
	case len(p) >= 3 && len(p) <= 4 && p[1] == "function":
		account, name = p[0], p[2]
		if len(p) == 4 {
			qual = p[3]
		}
	case len(p) <= 2:
		name = p[0]
		if len(p) == 2 {
			qual = p[1]
		}
	default:
		return "", fmt.Errorf("FunctionName %q is not a name or function ARN", fn)
	}
	if qq := q.Get("Qualifier"); qq != "" {
		if qual != "" && qual != qq {
			return "", fmt.Errorf("FunctionName %q and Qualifier %q disagree (Lambda refuses this)", fn, qq)
		}
		qual = qq
	}
	arn := "arn:aws:lambda:" + region + ":" + account + ":function:" + name
	if qual != "" {
		arn += ":" + qual
	}
	return arn, nil
}

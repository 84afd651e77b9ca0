package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	gcaws "gocloud.dev/aws"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
)

// s3Config is a bucket of an S3-compatible store (EDUTRACK_BLOB_URL=s3://...), and the keys
// to it when EduTrack's own settings give them.
type s3Config struct {
	url                          *url.URL
	accessKeyID, secretAccessKey string
}

// s3Params are the query parameters of an s3:// EDUTRACK_BLOB_URL: those of gocloud.dev's
// s3blob and gocloud.dev/aws, less the ones that need credentials in the URL or change how
// every request is routed in ways nobody has asked for (accelerate, dualstack, fips).
var s3Params = []string{"region", "endpoint", "use_path_style", "s3ForcePathStyle", "disable_https", "hostname_immutable",
	"profile", "role", "role_session_name", "role_external_id", "role_duration", "web_identity_token_file",
	"anonymous", "ssetype", "kmskeyid", "request_checksum_calculation", "response_checksum_validation", "rate_limiter_capacity"}

// s3BoolParams are the parameters of s3Params that take true or false.
var s3BoolParams = []string{"use_path_style", "s3ForcePathStyle", "disable_https", "hostname_immutable", "anonymous"}

// blobProblems are the problems of the blob storage settings: EDUTRACK_BLOB_URL is a directory
// (file:///absolute/path) or a bucket (s3://bucket?region=...), and the S3 keys come in pairs.
func (s settings) blobProblems() []error {
	var problems []error
	if s.certificates != "on" && s.certificates != "off" {
		problems = append(problems, fmt.Errorf("EDUTRACK_CERTIFICATES %q: want on or off", s.certificates))
	}
	if s.graphqlIntrospection != "on" && s.graphqlIntrospection != "off" {
		problems = append(problems, fmt.Errorf("EDUTRACK_GRAPHQL_INTROSPECTION %q: want on or off", s.graphqlIntrospection))
	}
	isS3 := false
	if s.blobURL != "" {
		u, err := url.Parse(s.blobURL)
		switch {
		case err == nil && u.Scheme == "s3":
			isS3 = true
			problems = append(problems, s3URLProblems(u)...)
		case err != nil || u.Scheme != "file" || u.Host != "" || !strings.HasPrefix(u.Path, "/"):
			problems = append(problems, fmt.Errorf("EDUTRACK_BLOB_URL %q: want a directory as file:///absolute/path, or a bucket as s3://bucket?region=eu-west-1",
				redacted(s.blobURL)))
		}
	}
	if (s.s3AccessKeyID == "") != (s.s3SecretAccessKey == "") {
		problems = append(problems, errors.New("EDUTRACK_S3_ACCESS_KEY_ID and EDUTRACK_S3_SECRET_ACCESS_KEY: set both, or neither for the keys the AWS SDK finds itself, such as AWS_ACCESS_KEY_ID or a role"))
	} else if s.s3AccessKeyID != "" && !isS3 {
		problems = append(problems, errors.New("EDUTRACK_S3_ACCESS_KEY_ID: set, but EDUTRACK_BLOB_URL is not an s3:// bucket"))
	}
	if s.publicURL != "" && s.smtpURL == "" {
		if u, err := url.Parse(s.publicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			problems = append(problems, fmt.Errorf("EDUTRACK_PUBLIC_URL %q: want an http(s) URL where learners reach EduTrack, such as https://learn.school.example", s.publicURL))
		}
	}
	return problems
}

// s3URLProblems are what is wrong with an s3:// URL: the bucket is its host, it has no path,
// keys never travel in it, and each parameter is one s3blob knows.
func s3URLProblems(u *url.URL) []error {
	var problems []error
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf("EDUTRACK_BLOB_URL %q: "+format, append([]any{u.Redacted()}, args...)...))
	}
	if u.User != nil {
		bad("keys go in EDUTRACK_S3_ACCESS_KEY_ID and EDUTRACK_S3_SECRET_ACCESS_KEY (or _FILE), never in the URL")
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") {
		bad("want s3://bucket?region=..., the bucket's name as host and no path")
	}
	for k, vs := range u.Query() {
		switch {
		case !slices.Contains(s3Params, k):
			bad("unknown parameter %q; want some of %s", k, strings.Join(s3Params, ", "))
		case len(vs) != 1:
			bad("parameter %q given %d times", k, len(vs))
		case slices.Contains(s3BoolParams, k):
			if _, err := strconv.ParseBool(vs[0]); err != nil {
				bad("parameter %q: want true or false", k)
			}
		case k == "endpoint":
			if e, err := url.Parse(vs[0]); err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				bad("endpoint %q: want an http(s) URL such as http://seaweedfs:8333", vs[0])
			}
		}
	}
	return problems
}

// s3Bucket opens the bucket of c: the AWS SDK's configuration (its environment, shared files
// and roles) with what the URL sets, and EduTrack's keys when it has them. It also returns a
// function that drops the client's idle connections, for the process's close.
func s3Bucket(ctx context.Context, c *s3Config) (*blob.Bucket, func() error, error) {
	q := c.url.Query()
	// A ranged read (the ZIP check of module files) or a store that keeps no checksums answers
	// without one; the SDK would print a line to stderr for every such read.
	clientOpts := []func(*s3.Options){func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true }}
	take := func(k string) string {
		v := q.Get(k)
		q.Del(k)
		return v
	}
	for _, k := range []string{"use_path_style", "s3ForcePathStyle"} {
		if v, err := strconv.ParseBool(take(k)); err == nil {
			clientOpts = append(clientOpts, func(o *s3.Options) { o.UsePathStyle = v })
		}
	}
	if v, err := strconv.ParseBool(take("disable_https")); err == nil {
		clientOpts = append(clientOpts, func(o *s3.Options) { o.EndpointOptions.DisableHTTPS = v })
	}
	bucketOpts := &s3blob.Options{KMSEncryptionID: take("kmskeyid")}
	if sse := take("ssetype"); sse != "" {
		i := slices.IndexFunc(types.ServerSideEncryptionAes256.Values(), func(t types.ServerSideEncryption) bool { return strings.EqualFold(string(t), sse) })
		if i < 0 {
			return nil, nil, fmt.Errorf("ssetype %q: want one of %v", sse, types.ServerSideEncryptionAes256.Values())
		}
		bucketOpts.EncryptionType = types.ServerSideEncryptionAes256.Values()[i]
	}
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	if c.accessKeyID != "" {
		cfg.Credentials = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(c.accessKeyID, c.secretAccessKey, ""))
	}
	// A transport of our own, so that closing the bucket closes its connections too; a store that
	// does not answer fails a request, and the job that sent it retries later.
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   certificateWorkers * 2,
		ForceAttemptHTTP2:     true,
	}
	cfg.HTTPClient = &http.Client{Transport: transport}
	// Like s3blob's own opener: the upload manager does not read this from the client.
	bucketOpts.RequestChecksumCalculation = cfg.RequestChecksumCalculation
	b, err := s3blob.OpenBucket(ctx, s3.NewFromConfig(cfg, clientOpts...), c.url.Host, bucketOpts)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { transport.CloseIdleConnections(); return nil }, nil
}

// blobCheck is the readiness check of a blob store: it answers, and the bucket is there.
func blobCheck(b *blob.Bucket) func(context.Context) error {
	return func(ctx context.Context) error {
		ok, err := b.IsAccessible(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("the bucket does not exist")
		}
		return nil
	}
}

package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/upstash"
)

// maxTopicsBytes bounds the GET /topics answer read (the transport's own
// bound: 100,000 topics of Kafka's longest names).
const maxTopicsBytes = 32 << 20

// topicExists reports whether topic exists on the server, without creating
// it: reading a topic (a consume, a tail) makes a server that auto-creates
// topics create it, and so does transport.TopicChecker on the REST
// transport (it asks the server to create what is missing, as a Produce
// would). Over REST it reads the server's topic list (GET /topics), which
// shows the topics these credentials may produce to or consume from, and
// asks about a topic not in it with a fetch (404: missing; 403: out of
// their reach, an error); on
// Kafka it asks the transport, which the command opens without
// auto-creation, so its metadata request creates nothing. A transport that
// can tell neither way is taken to have the topic.
func topicExists(ctx context.Context, g *globals, t transport.Transport, topic string) (bool, error) {
	switch tt := t.(type) {
	case *upstash.Transport:
		topics, err := restTopics(ctx, g, tt.URL())
		if err != nil {
			return false, err
		}
		if _, ok := topics[topic]; ok {
			return true, nil
		}
		// The list shows only the topics these credentials may produce to
		// or consume from: a topic missing from it may exist and be out
		// of their reach. A fetch, which creates nothing, tells: 404 for a
		// topic that does not exist, 403 for one they may not read.
		return restFetchable(ctx, g, tt.URL(), topic)
	case transport.TopicChecker:
		missing, err := tt.MissingTopics(ctx, topic)
		return len(missing) == 0, err
	}
	return true, nil
}

// restTopics lists the REST server's topics and their partition counts
// (GET /topics at base), with the credentials the transport uses. A
// refusal is an *upstash.Error, as the transport's own would be, so that
// describe hints at its cause.
func restTopics(ctx context.Context, g *globals, base string) (map[string]int32, error) {
	body, err := restRequest(ctx, g, base, http.MethodGet, "/topics", nil)
	if err != nil {
		return nil, err
	}
	var topics map[string]int32
	if err := json.Unmarshal(body, &topics); err != nil {
		return nil, fmt.Errorf("GET /topics: the answer is not a topic list: %w", err)
	}
	return topics, nil
}

// restFetchable reports whether topic exists, by a fetch of its partition
// 0 that waits for nothing (POST /fetch creates no topic): false for a 404
// about the topic, the refusal for any other (403: these credentials may
// not read it).
func restFetchable(ctx context.Context, g *globals, base, topic string) (bool, error) {
	q, err := json.Marshal(map[string]any{"topic": topic, "partition": 0, "offset": 0, "timeout": 1})
	if err != nil {
		return false, err
	}
	_, err = restRequest(ctx, g, base, http.MethodPost, "/fetch", q)
	if errors.Is(err, transport.ErrUnknownTopic) {
		return false, nil
	}
	return err == nil, err
}

// restRequest sends one request to the REST server at base, with the
// credentials the transport uses, and returns the body of a 200 answer.
func restRequest(ctx context.Context, g *globals, base, method, path string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, g.connectTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user, pass, ok := restCredentials(g); ok {
		req.SetBasicAuth(user, pass)
	}
	// No redirect is followed: the credentials go to the server named only.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxTopicsBytes))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		e := &upstash.Error{Status: resp.StatusCode, Method: method, Path: path, Message: http.StatusText(resp.StatusCode)}
		var refusal struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(answer, &refusal) == nil && refusal.Error != "" {
			e.Message = refusal.Error
		}
		return nil, e
	}
	return answer, nil
}

// restCredentials are the credentials openTransport gives the REST
// transport, as upstash.FromEnv takes them: --username and --password,
// each falling back to its variable; else the variables; else the user
// info of the URL (--url, else the URL variables). ok is false for none.
func restCredentials(g *globals) (user, pass string, ok bool) {
	envUser, envPass := envCredentials()
	switch {
	case g.username != "" || g.password != "":
		return cmp.Or(g.username, envUser), cmp.Or(g.password, envPass), true
	case envUser != "" || envPass != "":
		return envUser, envPass, true
	}
	// The URL is read as upstash.WithURL reads it: trimmed of spaces, and
	// a bare host ("user:pw@host:port") taken as https://.
	raw := strings.TrimSpace(cmp.Or(g.url, os.Getenv(upstash.EnvURL), os.Getenv(upstash.EnvLegacyURL)))
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return "", "", false
	}
	pass, _ = u.User.Password()
	return u.User.Username(), pass, true
}

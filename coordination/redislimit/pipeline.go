package redislimit

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// pipeliner gives redis_rate a client whose scripts run in shared
// pipelines: calls that arrive while a pipeline is in flight leave together
// in the next one, so a burst of calls costs a few round trips and
// syscalls, not one each, while a lone call leaves at once. A caller waits
// for its answer at most until its context ends; an answer that comes later
// is dropped.
//
// It is written here rather than with go-redis's AutoPipeliner because that
// is experimental in v9.23 and does not honour a command's context once the
// command is queued, so an outage would stall calls for the socket timeouts.
type pipeliner struct {
	rdb     *redis.Client
	timeout time.Duration
	reqs    chan *pipelined
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// pipelined is one queued command; done is closed once cmd holds its answer.
type pipelined struct {
	cmd  *redis.Cmd
	done chan struct{}
}

const (
	// pipelineWorkers is how many pipelines may be in flight at once.
	pipelineWorkers = 2
	// pipelineMax is the most commands one pipeline carries.
	pipelineMax = 128
)

func newPipeliner(rdb *redis.Client, timeout time.Duration) *pipeliner {
	p := &pipeliner{rdb: rdb, timeout: timeout, reqs: make(chan *pipelined, pipelineWorkers*pipelineMax), stop: make(chan struct{})}
	for range pipelineWorkers {
		p.wg.Go(p.work)
	}
	return p
}

// close stops the workers once the commands they hold are answered.
func (p *pipeliner) close() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}

func (p *pipeliner) work() {
	batch := make([]*pipelined, 0, pipelineMax)
	for {
		select {
		case <-p.stop:
			return
		case r := <-p.reqs:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < pipelineMax {
			select {
			case r := <-p.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		pipe := p.rdb.Pipeline()
		for _, r := range batch {
			pipe.Process(ctx, r.cmd)
		}
		pipe.Exec(ctx) // each command holds its own answer or error
		cancel()
		for _, r := range batch {
			close(r.done)
		}
	}
}

// do queues a script command and waits for its answer or the end of ctx.
func (p *pipeliner) do(ctx context.Context, args ...any) *redis.Cmd {
	r := &pipelined{cmd: redis.NewCmd(ctx, args...), done: make(chan struct{})}
	select {
	case p.reqs <- r:
	case <-ctx.Done():
		return failed(ctx, args)
	}
	select {
	case <-r.done:
		return r.cmd
	case <-ctx.Done():
		return failed(ctx, args) // r.cmd stays the worker's
	}
}

func failed(ctx context.Context, args []any) *redis.Cmd {
	cmd := redis.NewCmd(ctx, args...)
	cmd.SetErr(ctx.Err())
	return cmd
}

func scriptArgs(name, script string, keys []string, args []any) []any {
	out := make([]any, 0, 3+len(keys)+len(args))
	out = append(out, name, script, len(keys))
	for _, k := range keys {
		out = append(out, k)
	}
	return append(out, args...)
}

// Eval, EvalSha and the rest make pipeliner redis_rate's client; only the
// two that run its scripts are pipelined.

func (p *pipeliner) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return p.do(ctx, scriptArgs("eval", script, keys, args)...)
}

func (p *pipeliner) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return p.do(ctx, scriptArgs("evalsha", sha1, keys, args)...)
}

func (p *pipeliner) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return p.rdb.EvalRO(ctx, script, keys, args...)
}

func (p *pipeliner) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return p.rdb.EvalShaRO(ctx, sha1, keys, args...)
}

func (p *pipeliner) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return p.rdb.ScriptExists(ctx, hashes...)
}

func (p *pipeliner) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return p.rdb.ScriptLoad(ctx, script)
}

func (p *pipeliner) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return p.rdb.Del(ctx, keys...)
}

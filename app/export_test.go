package app

import "context"

// RunInGroup runs run as one more component of p, started last (so stopped
// first): tests make it fail to see the platform stop.
func (p *Platform) RunInGroup(ctx context.Context, name string, run func(context.Context) error) error {
	return p.group.start(ctx, name, funcComponent(run))
}

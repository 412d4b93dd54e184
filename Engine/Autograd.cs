namespace ViTScratch.Engine;

// The tape. Each op that needs a gradient stores its inputs (Parents) and one small closure
// (BackwardFn) that reads this tensor's Grad and ACCUMULATES (+=) into each parent's Grad.
// Backward() orders the graph topologically and runs the closures from the loss back to the leaves.
//
// Backpropagating the same graph twice works and is defined: intermediate gradients are zeroed at
// the start of every Backward, and leaf gradients (parameters) accumulate across calls until
// ZeroGrad, exactly like PyTorch with retain_graph=True.
public sealed partial class Tensor
{
    internal Tensor[] Parents { get; set; } = [];
    internal Action? BackwardFn { get; set; }

    /// <summary>True for tensors made by the user (parameters, inputs) rather than by an op.</summary>
    public bool IsLeaf => BackwardFn is null;

    [ThreadStatic] private static int _noGradDepth;

    /// <summary>While the returned scope is open, ops record no graph (inference, optimizer updates).</summary>
    public static IDisposable NoGrad() => new NoGradScope();

    public static bool GradEnabled => _noGradDepth == 0;

    private sealed class NoGradScope : IDisposable
    {
        private bool _done;
        public NoGradScope() => _noGradDepth++;
        public void Dispose()
        {
            if (_done) return;
            _done = true;
            _noGradDepth--;
        }
    }

    /// <summary>Back-propagates from this scalar: every tensor in its graph with RequiresGrad gets Grad += dThis/dTensor.</summary>
    public void Backward()
    {
        if (Length != 1)
            throw new ViTScratchException($"Backward: called on a tensor of shape {ShapeOf.Format(Shape)}; it needs a scalar (one element), e.g. a loss");
        if (!RequiresGrad)
            throw new ViTScratchException("Backward: this tensor does not require a gradient (no parameter with RequiresGrad reaches it, or it was computed under NoGrad)");

        var order = TopologicalOrder();
        foreach (var t in order)
        {
            bool fresh = t.Grad is null;
            if (fresh) t.Grad = t.Pooled ? t.Device.Rent(t.Length) : t.K.Allocate(t.Length);
            if (fresh || !t.IsLeaf) t.K.Fill(t.Grad!, 0f, t.Length);
        }
        K.Fill(Grad!, 1f, 1);
        for (int i = order.Count - 1; i >= 0; i--) order[i].BackwardFn?.Invoke();
    }

    // Depth-first post-order over tensors that require grad, iterative so deep graphs cannot
    // overflow the stack. Parents come before children in the returned list.
    private List<Tensor> TopologicalOrder()
    {
        var order = new List<Tensor>();
        var visited = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(Tensor node, int next)>();
        stack.Push((this, 0));
        visited.Add(this);
        while (stack.Count > 0)
        {
            var (node, next) = stack.Pop();
            if (next < node.Parents.Length)
            {
                stack.Push((node, next + 1));
                var p = node.Parents[next];
                if (p.RequiresGrad && visited.Add(p)) stack.Push((p, 0));
            }
            else order.Add(node);
        }
        return order;
    }
}

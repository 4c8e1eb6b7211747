//! Depths and cycles of job graphs given as index lists (FlowBench DAGs, pipelines'
//! `needs`).

/// The depth of every node (the longest path from a node without parents, in edges), or,
/// if the graph has a cycle, one cycle as a closed path `[a, b, ..., a]`.
/// `parents[i]` lists the parents of node `i`; every index must be below
/// `parents.len()`.
pub(crate) fn depths(parents: &[Vec<usize>]) -> Result<Vec<u32>, Vec<usize>> {
    let n = parents.len();
    let mut kids: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (child, ps) in parents.iter().enumerate() {
        for &p in ps {
            kids[p].push(child);
        }
    }
    // Kahn's algorithm; `pending[i]`: parents of `i` not yet done.
    let mut pending: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut depth = vec![0u32; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut done = 0;
    while let Some(node) = ready.pop() {
        done += 1;
        for &c in &kids[node] {
            depth[c] = depth[c].max(depth[node] + 1);
            pending[c] -= 1;
            if pending[c] == 0 {
                ready.push(c);
            }
        }
    }
    if done == n {
        return Ok(depth);
    }
    // Every node left has a parent left, so walking such parents must come back to a
    // node already seen.
    let Some(start) = (0..n).find(|&i| pending[i] > 0) else {
        return Ok(depth);
    };
    let mut walk = vec![start];
    let mut node = start;
    while let Some(&p) = parents[node].iter().find(|&&p| pending[p] > 0) {
        if let Some(at) = walk.iter().position(|&w| w == p) {
            let mut cycle = walk.split_off(at);
            cycle.push(p);
            cycle.reverse();
            return Err(cycle);
        }
        walk.push(p);
        node = p;
    }
    Err(walk)
}

#[cfg(test)]
mod tests {
    use super::depths;

    #[test]
    fn longest_paths_and_cycles() {
        // 0 -> 1 -> 2, 0 -> 2, 2 -> 3
        assert_eq!(
            depths(&[vec![], vec![0], vec![0, 1], vec![2]]),
            Ok(vec![0, 1, 2, 3])
        );
        // 0 -> 1 -> 2 -> 3 -> 1
        assert_eq!(
            depths(&[vec![], vec![0, 3], vec![1], vec![2]]),
            Err(vec![1, 2, 3, 1])
        );
        assert_eq!(depths(&[vec![0]]), Err(vec![0, 0]));
        assert_eq!(depths(&[]), Ok(vec![]));
    }
}

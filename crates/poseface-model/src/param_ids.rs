//! Parameter ids that depend on the parameter's place in the module, not on the process.
//!
//! burn keys optimiser state (SGD momentum, Adam moments) by [`ParamId`], which it draws at
//! random when a module is built. A run resumed in a new process builds its modules afresh,
//! so optimiser state saved by the interrupted process would match nothing. Giving every
//! parameter the id `FNV-1a(path)` (e.g. `layer1.0.conv1.weight`) makes the ids the same in
//! every process, and saved optimiser state loads back onto the same parameters.

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Bool, Int, Tensor};

/// Re-ids every parameter of `module` by a hash of its path (and of `namespace`, so that two
/// modules trained side by side never share an id).
pub fn stable_param_ids<M: Module>(module: M, namespace: &str) -> M {
    module.map(&mut StableIds {
        path: vec![namespace.to_string()],
    })
}

/// FNV-1a, 64 bits: a fixed, documented hash (std's `DefaultHasher` may change between
/// Rust releases, which would orphan saved optimiser state).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

struct StableIds {
    path: Vec<String>,
}

impl StableIds {
    fn id(&self) -> ParamId {
        ParamId::from(fnv1a(&self.path.join(".")))
    }
}

impl ModuleMapper for StableIds {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, value, mapper) = param.consume();
        Param::from_mapped_value(self.id(), value, mapper)
    }

    fn map_int<const D: usize>(&mut self, param: Param<Tensor<D, Int>>) -> Param<Tensor<D, Int>> {
        let (_, value, mapper) = param.consume();
        Param::from_mapped_value(self.id(), value, mapper)
    }

    fn map_bool<const D: usize>(
        &mut self,
        param: Param<Tensor<D, Bool>>,
    ) -> Param<Tensor<D, Bool>> {
        let (_, value, mapper) = param.consume();
        Param::from_mapped_value(self.id(), value, mapper)
    }
}

#[cfg(test)]
mod tests {
    use burn::module::ModuleVisitor;
    use burn::tensor::Device;

    use super::*;
    use crate::backbone::BackboneConfig;

    struct Ids(Vec<(u64, bool)>);

    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push((param.id.val(), param.val().is_require_grad()));
        }
    }

    /// Ids of the trainable parameters (what optimiser state is keyed by). Running
    /// batch-norm statistics are visited too but are not parameters of the optimiser.
    fn ids<M: Module>(m: &M) -> Vec<u64> {
        let mut v = Ids(Vec::new());
        m.visit(&mut v);
        v.0.into_iter()
            .filter(|(_, g)| *g)
            .map(|(id, _)| id)
            .collect()
    }

    #[test]
    fn ids_depend_on_paths_only_and_are_distinct() {
        // Hand-checked FNV-1a values: the empty string is the offset basis; "a" is
        // (0xcbf29ce484222325 ^ 0x61) · 0x100000001b3 mod 2⁶⁴.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        let device = Device::default().autodiff();
        let mut c = BackboneConfig::named("r18");
        c.width = 0.0625;
        c.input_size = 32;
        c.embedding_size = 8;
        let a = stable_param_ids(c.init(&device).unwrap(), "backbone");
        let b = stable_param_ids(c.init(&device).unwrap(), "backbone");
        let (ia, ib) = (ids(&a), ids(&b));
        assert_eq!(ia, ib);
        assert!(ia.len() > 50);
        let mut unique = ia.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ia.len(), "every parameter has its own id");
        let fresh = ids(&c.init(&device).unwrap());
        assert_ne!(fresh, ia, "burn's own ids are random");
        let other = stable_param_ids(c.init(&device).unwrap(), "pose_head");
        assert_ne!(ids(&other)[0], ia[0]);
    }
}

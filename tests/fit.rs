//! The fit engine against Nova's own answers.

use crate::common::data;
use numasim::fit::pyset::PySet;

#[test]
fn python_set_emulation_matches_cpython() {
    let text = std::fs::read_to_string(data("pyset-vectors.jsonl")).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let list = |k: &str| -> Vec<u32> {
            v[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        let a = PySet::from_iter_ordered(list("a"));
        let b = PySet::from_iter_ordered(list("b"));
        assert_eq!(a.to_vec(), list("set_a"), "set(a) {line}");
        let ca = a.coerced();
        assert_eq!(ca.to_vec(), list("coerced_a"), "coerced {line}");
        assert_eq!(ca.intersection(&b).to_vec(), list("and"), "a & b {line}");
        assert_eq!(b.intersection(&ca).to_vec(), list("rand"), "b & a {line}");
        assert_eq!(ca.difference(&b).to_vec(), list("sub"), "a - b {line}");
        assert_eq!(
            ca.copy().difference(&b).to_vec(),
            list("copy_sub"),
            "set(a) - b {line}"
        );
        let mut d = ca.copy();
        for x in list("b") {
            d.discard(x);
        }
        for x in &list("a")[..list("a").len() / 2] {
            d.add(x + 1);
        }
        assert_eq!(d.to_vec(), list("discard_add"), "discard/add {line}");
        let mut u = ca.copy();
        u.merge(&b);
        assert_eq!(u.to_vec(), list("ior"), "a |= b {line}");
        n += 1;
    }
    assert_eq!(n, 800);
}

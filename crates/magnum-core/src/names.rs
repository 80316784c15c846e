//! Generated names for objects created without one, in upstream's style: a Greek letter, a
//! number and the kind of object (`zeta-22-template`, `sigma-7-cluster`).

use rand::seq::SliceRandom;
use rand::Rng;

const GREEK_LETTERS: [&str; 24] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi",
    "psi", "omega",
];

/// Returns a fresh name such as `zeta-22-template` for the given object kind.
pub fn generate_name(kind: &str) -> String {
    let mut rng = rand::thread_rng();
    let letter = GREEK_LETTERS.choose(&mut rng).copied().unwrap_or("alpha");
    let number: u32 = rng.gen_range(0..100);
    format!("{letter}-{number}-{kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_have_letter_number_kind() {
        let name = generate_name("template");
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert!(GREEK_LETTERS.contains(&parts[0]));
        assert!(parts[1].parse::<u32>().unwrap() < 100);
        assert_eq!(parts[2], "template");
    }
}

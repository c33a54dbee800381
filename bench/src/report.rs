//! The suite's table: one row per figure, with its target and whether it was met. The three
//! programs of `bench/run.sh` print rows in this shape, and the script prints them as one table.

pub struct Row {
    pub figure: String,
    pub measured: String,
    pub target: String,
    pub met: Option<bool>,
}

impl Row {
    pub fn new(figure: impl Into<String>, measured: impl Into<String>) -> Self {
        Self {
            figure: figure.into(),
            measured: measured.into(),
            target: "—".into(),
            met: None,
        }
    }

    pub fn target(mut self, target: impl Into<String>, met: bool) -> Self {
        self.target = target.into();
        self.met = Some(met);
        self
    }

    pub fn print(&self) {
        let met = match self.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        println!(
            "| {} | {} | {} | {met} |",
            self.figure, self.measured, self.target
        );
    }
}

/// `1234567.0` as "1.23 M", `12345.0` as "12.3 k".
pub fn count(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else if rate >= 1e4 {
        format!("{:.0} k", rate / 1e3)
    } else if rate >= 1e3 {
        format!("{:.1} k", rate / 1e3)
    } else {
        format!("{rate:.0}")
    }
}

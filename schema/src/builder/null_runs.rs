//! [`Optional`]: a column builder for a column that is null in most rows, which appends each run
//! of nulls at once.

use arrow::array::{ArrayRef, BooleanBuilder, Int32Builder, StringBuilder};

use super::{StrList, Take};

/// A builder that can append a run of nulls in one call.
pub(super) trait NullRun {
    fn append_nulls(&mut self, n: usize);
}

impl NullRun for StringBuilder {
    fn append_nulls(&mut self, n: usize) {
        StringBuilder::append_nulls(self, n);
    }
}

impl NullRun for StrList {
    fn append_nulls(&mut self, n: usize) {
        StrList::append_nulls(self, n);
    }
}

impl NullRun for BooleanBuilder {
    fn append_nulls(&mut self, n: usize) {
        BooleanBuilder::append_nulls(self, n);
    }
}

impl NullRun for Int32Builder {
    fn append_nulls(&mut self, n: usize) {
        Int32Builder::append_nulls(self, n);
    }
}

/// An optional column. Its nulls are counted and appended as one run when the next value, or the
/// end of the batch, comes. A typical event leaves about twenty columns null (no impersonation,
/// no response body, no pod, binding or role facts), and one append per run costs far less than
/// one per row per column.
#[derive(Default)]
pub(super) struct Optional<B> {
    builder: B,
    /// Nulls owed to `builder`, all of them after its last appended row.
    nulls: usize,
}

impl<B: NullRun> Optional<B> {
    #[inline]
    fn null(&mut self) {
        self.nulls += 1;
    }

    /// The builder, caught up with the nulls owed to it.
    #[inline]
    fn caught_up(&mut self) -> &mut B {
        if self.nulls > 0 {
            self.builder.append_nulls(std::mem::take(&mut self.nulls));
        }
        &mut self.builder
    }
}

impl Optional<StringBuilder> {
    #[inline]
    pub(super) fn push(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.caught_up().append_value(v),
            None => self.null(),
        }
    }
}

impl Optional<StrList> {
    #[inline]
    pub(super) fn push<S: AsRef<str>>(&mut self, items: Option<&[S]>) {
        let Some(items) = items else {
            return self.null();
        };
        let list = self.caught_up();
        for item in items {
            list.values().append_value(item.as_ref());
        }
        list.append(true);
    }
}

impl Optional<BooleanBuilder> {
    #[inline]
    pub(super) fn push(&mut self, value: Option<bool>) {
        match value {
            Some(v) => self.caught_up().append_value(v),
            None => self.null(),
        }
    }
}

impl Optional<Int32Builder> {
    #[inline]
    pub(super) fn push(&mut self, value: Option<i32>) {
        match value {
            Some(v) => self.caught_up().append_value(v),
            None => self.null(),
        }
    }
}

impl<B: NullRun + Take> Take for Optional<B> {
    fn take(&mut self) -> ArrayRef {
        self.caught_up().take()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};

    use super::*;

    #[test]
    fn runs_of_nulls_land_where_they_were_pushed() {
        let mut texts = Optional::<StringBuilder>::default();
        let mut lists = Optional::<StrList>::default();
        let rows: [Option<&str>; 7] = [None, None, Some("a"), None, Some(""), None, None];
        for row in rows {
            texts.push(row);
            lists.push(row.map(|v| [v]).as_ref().map(|l| l.as_slice()));
        }
        let texts = texts.take();
        let texts = texts.as_string::<i32>();
        let lists = lists.take();
        let lists = lists.as_list::<i32>();
        assert_eq!(texts.len(), rows.len());
        assert_eq!(lists.len(), rows.len());
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(texts.is_valid(i).then(|| texts.value(i)), *row, "row {i}");
            let item = lists
                .is_valid(i)
                .then(|| lists.value(i).as_string::<i32>().value(0).to_owned());
            assert_eq!(item.as_deref(), *row, "list row {i}");
        }
        // The builder starts the next batch empty.
        let mut again = Optional::<BooleanBuilder>::default();
        again.push(None);
        assert_eq!(again.take().len(), 1);
        assert_eq!(again.take().len(), 0);
    }
}

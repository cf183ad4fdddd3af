struct Conn;

impl Conn {
    #[loom::fiber]
    fn serve(self: &Self) {}
}

fn main() {
    Conn.serve();
}

struct Conn;

impl Conn {
    #[loom::fiber]
    fn serve(&self) {}
}

fn main() {
    Conn.serve();
}

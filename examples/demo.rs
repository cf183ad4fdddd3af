use std::time::Duration;
fn main() {
    let rt = loom::Runtime::builder().build().unwrap();
    let r = rt.run(|| {
        let a = loom::spawn(|| {
            for i in 0..3 {
                println!("a{i}");
                loom::yield_now();
            }
            1
        });
        let b = loom::spawn(|| {
            for i in 0..3 {
                println!("b{i}");
                loom::yield_now();
            }
            2
        });
        let s = loom::spawn(|| loom::time::sleep(Duration::from_millis(20)));
        let t = std::time::Instant::now();
        s.join().unwrap().unwrap();
        println!("slept {:?}", t.elapsed());
        let p = loom::spawn(|| -> i32 { panic!("boom") });
        println!("panic joined: {}", p.join().is_err());
        let forever = loom::spawn(|| loom::time::sleep(Duration::from_secs(3600)));
        let _ = forever;
        println!("{:?}", loom::fiber::current());
        a.join().unwrap() + b.join().unwrap()
    });
    println!("result {r}");
}

from atlas.synthetic.generate import main

main()
